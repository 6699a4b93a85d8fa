// The backward's launches, shared by BackwardPlan::run and the tuner's GPU bench, so the tuner
// times exactly what a user pays: the grid geometry and workspace layout of a (problem, config,
// SM count), the BwdParams of one set of arguments, and the launches in order (dQ accumulator
// reset with the D pre-pass, dK/dV kernel, GQA/MQA dK/dV reduction, dQ conversion or
// deterministic dQ).
#pragma once

#include <attnjit/device.h>
#include <attnjit/plan.h>
#include <attnjit/spec.h>

#include <attnjit/bwd_params.h>
#include <cuda.h>

#include <cstddef>
#include <cstdint>

namespace attnjit::codegen {

struct BackwardLayout {
  int num_m_blocks = 0, num_n_blocks = 0; // of the dK/dV kernel
  // Query heads of a GQA/MQA group split over this many CTAs per key block (see .cpp).
  int kv_splits = 1;
  // Causal: (split, batch, KV head) groups walked together, heaviest key blocks first (see .cpp).
  int causal_chunk = 1;
  // The workspace, in 4-byte words, in this order: D, the dQ accumulator, the dK/dV partials,
  // and (dq_tiled) one counter per (batch, KV head) of dK/dV CTAs whose dQ additions landed.
  int64_t dsum_floats = 0, dq_accum_floats = 0, dkv_partial_floats = 0, kv_done_words = 0;
  int dq_smem = 0; // dynamic shared memory of the deterministic dQ kernel; 0 otherwise
  // Rows per (batch, head) of the dQ accumulator (BwdParams::dq_accum_rows); 0 without one.
  int dq_accum_rows = 0;
  // The dQ accumulator in 64-row tiles of MMA fragments (the warp-specialized kernel; rows
  // padded to whole tiles), else [B, H, Sq, Dqk]. See BwdParams::dq_accum.
  bool dq_tiled = false;

  size_t workspace_bytes() const {
    return size_t(dsum_floats + dq_accum_floats + dkv_partial_floats + kv_done_words) * 4;
  }
};

// Throws Error(invalid_argument) naming the problem when a grid would not fit a launch.
BackwardLayout backward_layout(const AttentionProblem& problem, const TileConfig& config,
                               int sm_count);

// The program's kernels in GeneratedKernel::name_expressions() order, and the main one's launch.
struct BackwardKernels {
  CUfunction dkdv = nullptr, dsum = nullptr, dq = nullptr, reduce = nullptr;
  int threads = 0;      // of the dK/dV kernel
  int dynamic_smem = 0; // of the dK/dV kernel, bytes
  TileConfig config;    // of the dK/dV kernel; warp-specialized ones also read TMA tensor maps
  // sm_90 and later: every kernel after the first is launched to start while the one before
  // finishes (programmatic dependent launch); the templates wait where they read what it writes.
  bool overlap_launches = false;
};

// BackwardKernels::overlap_launches for a device: programmatic dependent launch is sm_90's.
inline bool backward_launches_overlap(const DeviceInfo& device) {
  return device.cc_major >= 9;
}

// Opts the deterministic dQ kernel in to its shared memory (above 48 KiB); a no-op otherwise.
// The dK/dV kernel's opt-in is the loader's, like every main kernel's.
CUresult prepare_backward_kernels(const BackwardKernels& kernels, const BackwardLayout& layout);

// The arguments as the kernels read them; the workspace is carved up as the layout says.
BwdParams backward_params(const AttentionProblem& problem, const BackwardLayout& layout,
                          const BackwardArgs& args);

// What failed, for the caller to throw or (the tuner) to classify: a refused launch leaves the
// context usable, a sticky error does not.
struct LaunchStatus {
  CUresult result = CUDA_SUCCESS;
  const char* call = ""; // which launch
  bool ok() const { return result == CUDA_SUCCESS; }
};

// Enqueues every launch of one backward on `stream`; stops at the first failure. Allocates
// nothing, so it can be captured in a CUDA graph. Throws Error(invalid_argument) only when TMA
// cannot describe a tensor of a warp-specialized config (see tensor_maps.h), before anything is
// launched.
LaunchStatus enqueue_backward(const BackwardKernels& kernels, const AttentionProblem& problem,
                              const BackwardLayout& layout, const BackwardArgs& args,
                              CUstream stream);

} // namespace attnjit::codegen

// The forward's launch, shared by ForwardPlan::run and the tuner's GPU bench, so the tuner times
// exactly what a user pays: the FwdParams of one set of arguments and, for a warp-specialized
// config, the TMA tensor maps encoded for them.
#pragma once

#include <attnjit/plan.h>
#include <attnjit/spec.h>

#include <cuda.h>

namespace attnjit::codegen {

// How one compiled forward kernel launches.
struct ForwardLaunch {
  CUfunction function = nullptr;
  TileConfig config;
  int threads = 0, dynamic_smem = 0;
  // CTAs of this kernel the whole GPU holds at once (resident_ctas()). A warp-specialized
  // kernel that walks tiles (forward_walks_tiles) launches at most this many CTAs, each taking
  // tiles blockIdx.x, blockIdx.x + gridDim.x, ..., so that its next Q and K/V load while its
  // last O is written. 0: one CTA per tile.
  int resident_ctas = 0;
  // The device's L2 cache, bytes: sizes causal_head_groups. 0: one head at a time.
  long long l2_bytes = 0;
};

// Groups of (batch, head) pairs whose causal tiles the grid interleaves, longest rows first
// across each group (FwdBlock): the fewest groups of nearly equal size (they differ by at most
// one pair) such that a quarter of the L2 holds a group's K and V, so that the CTAs that run
// together share what they read. One head at a time leaves a tail of long tiles at the end of
// the grid; all heads at once read more K/V than the L2 holds; a short last group starts its
// longest tiles last (docs/PERF.md, session 8, TFLOP/s one head at a time / these groups: d128
// S4096 H32 518 / 551, S2048 H40 400 / 449, d64 253 / 280, MLA 192/128 S2048 H128 529 / 545; all
// heads at once: 533, 418, 286, 318).
int causal_head_groups(const AttentionProblem& problem, long long l2_bytes);

// Occupancy (the driver's, from the kernel's registers, threads and shared memory) times the
// device's SM count. Needs the function's module loaded in the current context.
int resident_ctas(CUfunction function, int threads, int dynamic_smem, int sm_count);

// Enqueues one forward on `stream`; allocates nothing, so it can be captured in a CUDA graph.
// Returns the driver's result rather than throwing, so the tuner can tell a refused launch from
// a crash; throws Error(invalid_argument) only when TMA cannot describe a tensor (see
// tensor_maps.h), before anything is launched.
CUresult enqueue_forward(const ForwardLaunch& launch, const AttentionProblem& problem,
                         const ForwardArgs& args, CUstream stream);

} // namespace attnjit::codegen

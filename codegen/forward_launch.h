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
  // The device's L2 cache, bytes: sizes causal_group_heads. 0: one head at a time.
  long long l2_bytes = 0;
};

// (batch, head) pairs whose causal tiles the grid interleaves, longest rows first across the
// group (FwdBlock): as many as a quarter of the L2 holds the K and V of, so that the CTAs that
// run together share what they read. One head at a time left a tail of long tiles at the end of
// the grid; all heads at once read more K/V than L2 holds (docs/PERF.md, session 8: d128 S4096
// 563 TFLOP/s in groups of 4 heads, 533 all at once, 518 one at a time; MLA 192/128 H128 546 in
// groups of 8, 318 all at once).
int causal_group_heads(const AttentionProblem& problem, long long l2_bytes);

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

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
};

// Enqueues one forward on `stream`; allocates nothing, so it can be captured in a CUDA graph.
// Returns the driver's result rather than throwing, so the tuner can tell a refused launch from
// a crash; throws Error(invalid_argument) only when TMA cannot describe a tensor (see
// tensor_maps.h), before anything is launched.
CUresult enqueue_forward(const ForwardLaunch& launch, const AttentionProblem& problem,
                         const ForwardArgs& args, CUstream stream);

} // namespace attnjit::codegen

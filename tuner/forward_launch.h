// The forward's launch of a loaded candidate, for the GPU bench: codegen::enqueue_forward, the
// launch ForwardPlan::run makes.
#pragma once

#include "tuner/candidate_module.h"

#include <attnjit/plan.h>
#include <cuda.h>

namespace attnjit::tuner {

// Enqueues one forward run. Returns the driver's result rather than throwing, so the caller can
// tell a refused launch from a crash (a tensor TMA cannot describe throws Error).
CUresult launch_forward(const CandidateModule& module, const AttentionProblem& problem,
                        const ForwardArgs& args, CUstream stream);

} // namespace attnjit::tuner

// A candidate's CUBIN loaded into the current context, and the forward's launch, for the GPU
// bench. ForwardPlan would compile the kernel again (runtime::load_kernel compiles its request);
// the tuner already holds the CUBIN from its compile pool, so it loads that and launches it with
// the same FwdParams ForwardPlan::run fills.
#pragma once

#include "tuner/bench.h"

#include <attnjit/plan.h>
#include <cuda.h>

namespace attnjit::tuner {

class CandidateModule {
public:
  // Loads kernels[0] and opts in to its dynamic shared memory. Throws Error(driver) when the
  // driver refuses the image or the shared memory: the candidate failed, the context is fine.
  explicit CandidateModule(const CompiledCandidate& candidate);
  ~CandidateModule();
  CandidateModule(const CandidateModule&) = delete;
  CandidateModule& operator=(const CandidateModule&) = delete;

  const CompiledCandidate& candidate() const { return candidate_; } // without the CUBIN
  CUfunction function() const { return function_; }

private:
  CompiledCandidate candidate_;
  CUmodule module_ = nullptr;
  CUfunction function_ = nullptr;
};

// Enqueues one forward run. Returns the driver's result rather than throwing, so the caller can
// tell a refused launch from a crash.
CUresult launch_forward(const CandidateModule& module, const AttentionProblem& problem,
                        const ForwardArgs& args, CUstream stream);

// Errors after which the context is unusable: every later call fails the same way.
bool is_sticky(CUresult result);

// "CUDA_ERROR_ILLEGAL_ADDRESS (an illegal memory access was encountered)".
std::string describe(CUresult result);

} // namespace attnjit::tuner

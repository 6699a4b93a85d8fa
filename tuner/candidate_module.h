// A candidate's CUBIN loaded into the current context, for the GPU bench. A plan would compile the
// kernel again (runtime::load_kernel compiles its request); the tuner already holds the CUBIN from
// its compile pool, so it loads that. Every kernel of the program is looked up (the backward
// launches four), and the main one is opted in to its dynamic shared memory.
#pragma once

#include "tuner/bench.h"

#include <cuda.h>

#include <string>
#include <vector>

namespace attnjit::tuner {

class CandidateModule {
public:
  // Throws Error(driver) when the driver refuses the image, a kernel name or the shared memory:
  // the candidate failed, the context is fine.
  explicit CandidateModule(const CompiledCandidate& candidate);
  ~CandidateModule();
  CandidateModule(const CandidateModule&) = delete;
  CandidateModule& operator=(const CandidateModule&) = delete;

  const CompiledCandidate& candidate() const { return candidate_; } // without the CUBIN
  CUfunction function() const { return functions_.front(); }        // kernels[0], the main one
  // One per CompiledCandidate::kernels entry, in that order.
  const std::vector<CUfunction>& functions() const { return functions_; }

private:
  CompiledCandidate candidate_;
  CUmodule module_ = nullptr;
  std::vector<CUfunction> functions_;
};

// Errors after which the context is unusable: every later call fails the same way.
bool is_sticky(CUresult result);

// "CUDA_ERROR_ILLEGAL_ADDRESS (an illegal memory access was encountered)".
std::string describe(CUresult result);

} // namespace attnjit::tuner

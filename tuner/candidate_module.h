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
  // `device`: the one loaded on, for resident_ctas() and l2_bytes().
  CandidateModule(const CompiledCandidate& candidate, const DeviceInfo& device);
  ~CandidateModule();
  CandidateModule(const CandidateModule&) = delete;
  CandidateModule& operator=(const CandidateModule&) = delete;

  const CompiledCandidate& candidate() const { return candidate_; } // without the CUBIN
  CUfunction function() const { return functions_.front(); }        // kernels[0], the main one
  // One per CompiledCandidate::kernels entry, in that order.
  const std::vector<CUfunction>& functions() const { return functions_; }
  // The main kernel's CTAs the whole GPU holds at once (codegen::resident_ctas).
  int resident_ctas() const { return resident_ctas_; }
  long long l2_bytes() const { return l2_bytes_; } // the device's (codegen::ForwardLaunch)

private:
  CompiledCandidate candidate_;
  CUmodule module_ = nullptr;
  std::vector<CUfunction> functions_;
  int resident_ctas_ = 0;
  long long l2_bytes_ = 0;
};

// Errors after which the context is unusable: every later call fails the same way.
bool is_sticky(CUresult result);

// "CUDA_ERROR_ILLEGAL_ADDRESS (an illegal memory access was encountered)".
std::string describe(CUresult result);

} // namespace attnjit::tuner

// One pass's side of the GPU bench (gpu_bench.h): the problem's inputs and reference, made once
// per problem, and for each candidate a run on outputs of its own, its check, and the launch the
// timing repeats. GpuBench does the rest (loading, telling a refused launch from a crash,
// measure()) the same way for both passes.
#pragma once

#include "tuner/bench.h"
#include "tuner/candidate_module.h"

#include <attnjit/device.h>

#include <cuda.h>

#include <memory>
#include <string>

namespace attnjit::tuner {

struct PassCheck {
  bool passed = false;
  std::string detail; // why not, or the comparison's summary
  double max_error = 0;
};

class PassBench {
public:
  virtual ~PassBench() = default;
  // After `module` is loaded, before its first launch: what its kernels need besides the main
  // one's shared memory. Throws Error(driver) when the driver refuses: the candidate failed.
  virtual void adopt(const CandidateModule& module) = 0;
  // Enqueues one run on outputs of the candidate's own, freshly allocated and poisoned.
  virtual CUresult launch_checked(const CandidateModule& module) = 0;
  // After that run completed: guard bands, a NaN scan of every output, the sampled comparison
  // with the fp64 reference.
  virtual PassCheck check() = 0;
  // Enqueues one run on the outputs timing shares: their answers were checked already.
  virtual CUresult launch_timed(const CandidateModule& module, CUstream stream) = 0;
};

// Inputs (fixed random, from setup.seed), the reference rows, and the shared timing outputs.
std::unique_ptr<PassBench> make_forward_bench(const ProblemSetup& setup);
// The same for the backward, plus O and LSE from a run of the default forward kernel on the
// device, and dO; `device` gives the backward's launch geometry (its SM count).
std::unique_ptr<PassBench> make_backward_bench(const ProblemSetup& setup, const DeviceInfo& device);

} // namespace attnjit::tuner

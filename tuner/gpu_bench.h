// The Bench on a GPU in this process: fixed random inputs with guard bands, the fp64 reference
// on sampled rows, and per candidate: fresh poisoned outputs, one checked run, then the timing.
// What differs between the forward and the backward (inputs, outputs, launches, the comparison)
// is a PassBench (pass_bench.h).
// A candidate that crashes the context leaves this bench unusable; WorkerBench runs it in a
// child process for that reason, and `attnjit tune-worker` is that child.
#pragma once

#include "tuner/bench.h"

#include <map>
#include <memory>

namespace attnjit::tuner {

class CandidateModule;
class PassBench;

class GpuBench : public Bench {
public:
  // Creates (or retains) the device's primary context on this thread. Throws Error(no_device).
  explicit GpuBench(int device);
  ~GpuBench() override;

  const BenchDevice& device() const override { return device_; }
  void prepare(const ProblemSetup& setup) override;
  Outcome evaluate(const CompiledCandidate& candidate, double screen_above_ms) override;
  std::vector<std::vector<double>> remeasure(const std::vector<CompiledCandidate>& candidates,
                                             int rounds, const MeasureOptions& options) override;

private:
  std::unique_ptr<CandidateModule> load(const CompiledCandidate& candidate);
  const CandidateModule& module_for(const CompiledCandidate& candidate);
  Outcome check_and_time(const CompiledCandidate& candidate, const CandidateModule& module,
                         double screen_above_ms);

  int ordinal_;
  BenchDevice device_;
  std::unique_ptr<PassBench> pass_; // the prepared problem's inputs, reference, timing outputs
  MeasureOptions measure_;          // the prepared problem's
  std::map<int, std::unique_ptr<CandidateModule>> modules_; // by candidate id, for remeasure
  std::string dead_; // why the context is unusable, once a candidate crashed it
};

} // namespace attnjit::tuner

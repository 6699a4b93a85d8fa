// A Bench without a GPU, for the CPU tests of the search, the selection, resume and the worker
// protocol. Times are invented but fixed per config; a candidate whose CUBIN is one of the
// markers below misbehaves on purpose, so tests exercise every path a real kernel can take.
#pragma once

#include "tuner/bench.h"

namespace attnjit::tuner {

// CUBIN contents SimBench recognises (tests put them there through a fake CompileFn).
inline constexpr const char* kSimWrong = "SIM:wrong"; // wrong answer: rejected
inline constexpr const char* kSimFault = "SIM:fault"; // as an illegal address: context lost
inline constexpr const char* kSimAbort = "SIM:abort"; // the process dies (abort), as a driver bug
inline constexpr const char* kSimHang = "SIM:hang";   // never answers: the parent's timeout

struct SimOptions {
  int device_count = 1;
  bool real_crashes = false; // abort/hang for real (in a worker); in-process they are reported
};

class SimBench : public Bench {
public:
  explicit SimBench(int device, SimOptions options = {});
  const BenchDevice& device() const override { return device_; }
  void prepare(const ProblemSetup& setup) override;
  Outcome evaluate(const CompiledCandidate& candidate, double screen_above_ms) override;
  std::vector<std::vector<double>> remeasure(const std::vector<CompiledCandidate>& candidates,
                                             int rounds, const MeasureOptions& options) override;

  int prepares() const { return prepares_; }

private:
  SimOptions options_;
  BenchDevice device_;
  ProblemSetup setup_;
  bool prepared_ = false;
  int prepares_ = 0;
};

// The invented time of a config: 300 TFLOP/s scaled by a fixed per-config efficiency.
double simulated_ms(const AttentionProblem& problem, const TileConfig& config);

} // namespace attnjit::tuner

// Crash isolation: a Bench whose GPU work runs in a child process (`attnjit tune-worker`,
// started with posix_spawn, so this process never forks itself and never needs CUDA). A
// candidate that kills the CUDA context (illegal address, launch failure), the worker, or
// hangs is reported as crashed; the next request starts a fresh worker and prepares the
// problem again.
#pragma once

#include "tuner/bench.h"

#include <sys/types.h>

#include <string>
#include <vector>

namespace attnjit::tuner {

struct WorkerTimeouts {
  int start_ms = 120'000;     // process start, driver load, context creation
  int prepare_ms = 600'000;   // inputs and the fp64 reference of a large problem
  int evaluate_ms = 120'000;  // one candidate: check and timing
  int remeasure_ms = 600'000; // the alternation rounds
};

class WorkerBench : public Bench {
public:
  // `command`: the worker's argv without the device and socket flags, e.g.
  // {"/usr/bin/attnjit", "tune-worker"}; "--device=N" and "--fd=3" are appended. Starts the
  // worker; throws Error(no_device) with the worker's reason when it cannot use the GPU.
  WorkerBench(std::vector<std::string> command, int device, WorkerTimeouts timeouts = {});
  ~WorkerBench() override; // asks the worker to quit; kills it if it does not
  WorkerBench(const WorkerBench&) = delete;
  WorkerBench& operator=(const WorkerBench&) = delete;

  const BenchDevice& device() const override { return device_; }
  void prepare(const ProblemSetup& setup) override;
  Outcome evaluate(const CompiledCandidate& candidate, double screen_above_ms) override;
  std::vector<std::vector<double>> remeasure(const std::vector<CompiledCandidate>& candidates,
                                             int rounds, const MeasureOptions& options) override;

  int restarts() const { return restarts_; } // workers started after the first
  pid_t pid() const { return pid_; }         // 0 when none is running

private:
  void start();
  void ensure_running(); // restarts and re-prepares after a crash
  void send_prepare();
  // Reaps the worker (killing it after a grace period, at once when `kill_now`); returns how
  // it ended, e.g. "killed by signal 11 (Segmentation fault)".
  std::string stop(bool kill_now);

  std::vector<std::string> command_;
  int device_index_;
  WorkerTimeouts timeouts_;
  BenchDevice device_;
  bool prepared_ = false;
  ProblemSetup setup_;
  pid_t pid_ = 0;
  int fd_ = -1;
  int restarts_ = 0;
};

} // namespace attnjit::tuner

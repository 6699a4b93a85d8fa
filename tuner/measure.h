// The one timing function that `run`, `bench` and `tune` share.
#pragma once

#include <cuda.h>

#include <functional>
#include <vector>

namespace attnjit::tuner {

struct MeasureOptions {
  int warmup = 10;
  int runs = 50;
  bool flush_l2 = true; // overwrite an L2-sized buffer between runs so no run measures the cache
  // Quality gate: when the runs' spread is over `max_cv` (coefficient of variation), or their
  // median drifts by more than that between the first and the second half (the clock dropped),
  // measure again, up to `retries` more times, keeping the steadiest attempt; if none passes the
  // result says `noisy`. 0 turns the gate off.
  double max_cv = 0;
  int retries = 2;
};

struct Measurement {
  double median_ms = 0, min_ms = 0, max_ms = 0;
  double cv = 0;    // standard deviation / mean of the runs
  double drift = 0; // |median of the second half - median of the first half| / median
  int runs = 0;
  int attempts = 1;   // 1 + re-measurements the quality gate asked for
  bool noisy = false; // the gate's limit held for no attempt
};

// Times `launch(stream)` with CUDA events, one event pair per run, after warm-up; median of runs.
Measurement measure(const std::function<void(CUstream)>& launch, CUstream stream,
                    const MeasureOptions& options = {});

// The statistics measure() reports for a list of run times (milliseconds), in the order run.
Measurement summarize(std::vector<double> ms);

} // namespace attnjit::tuner

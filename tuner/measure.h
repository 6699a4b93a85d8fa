// The one timing function that `run`, `bench` and `tune` share.
#pragma once

#include <cuda.h>

#include <functional>

namespace attnjit::tuner {

struct MeasureOptions {
  int warmup = 10;
  int runs = 50;
  bool flush_l2 = true; // overwrite an L2-sized buffer between runs so no run measures the cache
};

struct Measurement {
  double median_ms = 0, min_ms = 0, max_ms = 0;
  double cv = 0; // standard deviation / mean of the runs
  int runs = 0;
};

// Times `launch(stream)` with CUDA events, one event pair per run, after warm-up; median of runs.
Measurement measure(const std::function<void(CUstream)>& launch, CUstream stream,
                    const MeasureOptions& options = {});

} // namespace attnjit::tuner

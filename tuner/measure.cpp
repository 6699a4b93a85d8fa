#include "tuner/measure.h"

#include "runtime/device_buffer.h"
#include "runtime/driver.h"

#include <attnjit/error.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <numeric>
#include <vector>

namespace attnjit::tuner {
namespace {

// One flush buffer per context, twice the largest L2 of any device (the driver table has no
// cuCtxGetDevice) and at least 64 MiB. Never freed: destroying it after main() would call
// cuMemFree on a driver that may already be torn down.
CUdeviceptr flush_buffer(size_t* words) {
  static std::mutex mutex;
  static std::map<CUcontext, runtime::DeviceBuffer*> buffers;
  CUcontext context = nullptr;
  ATTNJIT_CU(cuCtxGetCurrent(&context));
  std::lock_guard lock(mutex);
  runtime::DeviceBuffer*& buffer = buffers[context];
  if (!buffer) {
    int count = 0, l2 = 0;
    ATTNJIT_CU(cuDeviceGetCount(&count));
    for (int i = 0; i < count; ++i) {
      CUdevice device;
      int bytes = 0;
      ATTNJIT_CU(cuDeviceGet(&device, i));
      ATTNJIT_CU(cuDeviceGetAttribute(&bytes, CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE, device));
      l2 = std::max(l2, bytes);
    }
    buffer = new runtime::DeviceBuffer(std::max<size_t>(2 * size_t(l2), size_t{64} << 20));
  }
  *words = buffer->size() / 4;
  return buffer->address();
}

struct Events {
  std::vector<CUevent> events;
  ~Events() {
    for (CUevent e : events)
      runtime::driver().cuEventDestroy(e);
  }
};

// One attempt: warm-up, then every run queued before any is read.
Measurement measure_once(const std::function<void(CUstream)>& launch, CUstream stream,
                         const MeasureOptions& options) {
  size_t flush_words = 0;
  const CUdeviceptr flush = options.flush_l2 ? flush_buffer(&flush_words) : 0;
  for (int i = 0; i < options.warmup; ++i)
    launch(stream);

  // All runs are queued before any is read, so host work between launches never shows up as GPU
  // idle time inside a pair; the memset sits outside the pair and gives the host a head start.
  Events pairs;
  pairs.events.reserve(2 * options.runs);
  for (int i = 0; i < 2 * options.runs; ++i)
    ATTNJIT_CU(cuEventCreate(&pairs.events.emplace_back(), CU_EVENT_DEFAULT));
  for (int i = 0; i < options.runs; ++i) {
    if (options.flush_l2) ATTNJIT_CU(cuMemsetD32Async(flush, 0, flush_words, stream));
    ATTNJIT_CU(cuEventRecord(pairs.events[2 * i], stream));
    launch(stream);
    ATTNJIT_CU(cuEventRecord(pairs.events[2 * i + 1], stream));
  }
  ATTNJIT_CU(cuEventSynchronize(pairs.events.back()));

  std::vector<double> ms(options.runs);
  for (int i = 0; i < options.runs; ++i) {
    float elapsed = 0;
    ATTNJIT_CU(cuEventElapsedTime(&elapsed, pairs.events[2 * i], pairs.events[2 * i + 1]));
    ms[i] = elapsed;
  }
  return summarize(std::move(ms));
}

double median_of(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

} // namespace

Measurement summarize(std::vector<double> ms) {
  Measurement m;
  m.runs = int(ms.size());
  if (ms.empty()) return m;
  const double mean = std::accumulate(ms.begin(), ms.end(), 0.0) / ms.size();
  double variance = 0;
  for (double t : ms)
    variance += (t - mean) * (t - mean) / ms.size();
  const size_t half = ms.size() / 2;
  m.median_ms = median_of(ms);
  if (half > 0 && m.median_ms > 0) {
    const double first = median_of({ms.begin(), ms.begin() + half});
    const double second = median_of({ms.begin() + half, ms.end()});
    m.drift = std::abs(second - first) / m.median_ms;
  }
  m.min_ms = *std::min_element(ms.begin(), ms.end());
  m.max_ms = *std::max_element(ms.begin(), ms.end());
  m.cv = mean > 0 ? std::sqrt(variance) / mean : 0;
  return m;
}

Measurement measure(const std::function<void(CUstream)>& launch, CUstream stream,
                    const MeasureOptions& options) {
  if (options.runs <= 0 || options.warmup < 0 || options.retries < 0 || options.max_cv < 0)
    throw Error(ErrorKind::invalid_argument,
                "measure: runs must be > 0; warmup, retries and max_cv >= 0");
  const auto spread = [](const Measurement& m) { return std::max(m.cv, m.drift); };
  Measurement best = measure_once(launch, stream, options);
  if (options.max_cv <= 0) return best;
  int attempts = 1;
  // A busy neighbour or a clock change shows as spread; a fresh attempt usually misses it.
  while (spread(best) > options.max_cv && attempts <= options.retries) {
    Measurement again = measure_once(launch, stream, options);
    ++attempts;
    if (spread(again) < spread(best)) best = again;
  }
  best.attempts = attempts;
  best.noisy = spread(best) > options.max_cv;
  return best;
}

} // namespace attnjit::tuner

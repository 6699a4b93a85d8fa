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

} // namespace

Measurement measure(const std::function<void(CUstream)>& launch, CUstream stream,
                    const MeasureOptions& options) {
  if (options.runs <= 0 || options.warmup < 0)
    throw Error(ErrorKind::invalid_argument, "measure: runs must be > 0 and warmup >= 0");
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
  const double mean = std::accumulate(ms.begin(), ms.end(), 0.0) / ms.size();
  double variance = 0;
  for (double t : ms)
    variance += (t - mean) * (t - mean) / ms.size();
  std::sort(ms.begin(), ms.end());
  Measurement m;
  m.runs = options.runs;
  m.min_ms = ms.front();
  m.max_ms = ms.back();
  m.median_ms = ms.size() % 2 ? ms[ms.size() / 2] : (ms[ms.size() / 2 - 1] + ms[ms.size() / 2]) / 2;
  m.cv = mean > 0 ? std::sqrt(variance) / mean : 0;
  return m;
}

} // namespace attnjit::tuner

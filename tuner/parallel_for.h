// Host-side data parallelism for the references: a fixed chunking over all cores.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace attnjit::tuner {

// Runs body(begin, end) over [0, n) in chunks of `chunk` on up to hardware_concurrency threads;
// the first exception a chunk throws is rethrown here. The fp64 references are a few GFLOP for
// the test shapes: seconds on one core, a fraction of one on a GPU host's 16.
template <class Body> void parallel_for(int64_t n, int64_t chunk, const Body& body) {
  const int64_t chunks = (n + chunk - 1) / chunk;
  const int64_t threads =
      std::min<int64_t>(chunks, std::max(1u, std::thread::hardware_concurrency()));
  if (threads <= 1) {
    if (n > 0) body(0, n);
    return;
  }
  std::atomic<int64_t> next{0};
  std::exception_ptr failure;
  std::mutex failure_mutex;
  auto worker = [&] {
    try {
      for (int64_t c; (c = next.fetch_add(1)) < chunks;)
        body(c * chunk, std::min(n, (c + 1) * chunk));
    } catch (...) {
      std::lock_guard lock(failure_mutex);
      if (!failure) failure = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  for (int64_t t = 0; t < threads; ++t)
    pool.emplace_back(worker);
  for (auto& t : pool)
    t.join();
  if (failure) std::rethrow_exception(failure);
}

} // namespace attnjit::tuner

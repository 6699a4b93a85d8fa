// Compiling many generated kernels with NVRTC on all cores, for the codegen tests that check every
// instantiation the tuner may ask for compiles to CUBIN.
#pragma once

#include "codegen/codegen.h"
#include "runtime/nvrtc_compiler.h"

#include <attnjit/error.h>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace attnjit::test {

struct CompileJob {
  KernelSpec spec;
  TileConfig config;
  std::string arch;
};

struct SweepResult {
  std::vector<std::string> failures; // one line each: arch, slug and what went wrong
  size_t spilling = 0;               // programs with a kernel that spills registers
};

// Each job must give a CUBIN with one lowered name per name expression.
inline SweepResult compile_all(const std::vector<CompileJob>& jobs) {
  std::atomic<size_t> next{0};
  std::mutex mutex;
  SweepResult result;
  auto worker = [&] {
    for (size_t i; (i = next++) < jobs.size();) {
      const CompileJob& job = jobs[i];
      try {
        const auto k = codegen::generate(job.spec, job.config);
        const auto out = runtime::compile({k.source, k.slug, k.name_expressions(), job.arch, {}});
        const bool elf = out.cubin.size() > 4 && out.cubin[0] == 0x7f && out.cubin[1] == 'E';
        std::lock_guard lock(mutex);
        if (!elf) result.failures.push_back(fmt::format("{} {}: not a cubin", job.arch, k.slug));
        if (out.lowered_names.size() != k.name_expressions().size())
          result.failures.push_back(fmt::format("{} {}: {} of {} kernels", job.arch, k.slug,
                                                out.lowered_names.size(),
                                                k.name_expressions().size()));
        result.spilling += std::any_of(out.resources.begin(), out.resources.end(),
                                       [](const auto& r) { return r.spill_store_bytes > 0; });
      } catch (const Error& e) {
        std::lock_guard lock(mutex);
        result.failures.push_back(fmt::format("{}: {}", job.arch, e.what()));
      }
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < std::max(1u, std::thread::hardware_concurrency()); ++t)
    pool.emplace_back(worker);
  for (auto& t : pool)
    t.join();
  return result;
}

} // namespace attnjit::test

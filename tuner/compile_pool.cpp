#include "tuner/compile_pool.h"

#include <attnjit/error.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace attnjit::tuner {

codegen::GeneratedKernel generate_kernel(const KernelSpec& spec, const TileConfig& config) {
  return codegen::generate(spec, config);
}

CompileResult compile_candidate(const CompileContext& context, int id, const TileConfig& config,
                                bool baseline) {
  const auto start = std::chrono::steady_clock::now();
  CompileResult result;
  CompiledCandidate& c = result.candidate;
  c.id = id;
  c.config = config;
  try {
    const codegen::GeneratedKernel kernel = context.generate
                                                ? context.generate(context.problem.spec, config)
                                                : generate_kernel(context.problem.spec, config);
    const runtime::CompileRequest request{
        kernel.source, kernel.slug, kernel.name_expressions(), context.device.arch, {}};
    runtime::CompiledProgram program =
        context.compile ? context.compile(request) : runtime::compile(request);
    c.slug = kernel.slug;
    c.threads = kernel.threads;
    c.dynamic_smem = kernel.dynamic_smem;
    c.cubin = std::move(program.cubin);
    c.kernels = std::move(program.lowered_names);
    result.source = {request.source, request.name_expressions, std::move(program.options)};
    result.usage = std::move(program.resources);
    PruneRules rules = context.rules;
    if (baseline) rules.max_spill_bytes = INT32_MAX;
    result.verdict = can_implement(context.problem, config, context.device, result.usage, rules);
  } catch (const Error& e) {
    // tune() generated the default config before searching, so a spec the generator refuses has
    // already stopped it; what fails here fails for this config alone.
    result.verdict = {kReasonCompile, e.what()};
  }
  result.compile_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return result;
}

ThreadPool::ThreadPool(int threads) {
  if (threads <= 0) threads = int(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 0; i < threads; ++i)
    threads_.emplace_back([this] { work(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  ready_.notify_all();
  for (std::thread& t : threads_)
    t.join();
}

void ThreadPool::submit(std::function<void()> job) {
  {
    std::lock_guard lock(mutex_);
    jobs_.push_back(std::move(job));
  }
  ready_.notify_one();
}

void ThreadPool::work() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock lock(mutex_);
      ready_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return; // stopping, and nothing left
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job(); // jobs catch their own errors: one bad candidate must not end the pool
  }
}

} // namespace attnjit::tuner

// Generating and NVRTC-compiling candidates on a pool of threads (NVRTC is thread-safe), so the
// GPU times the candidates already compiled while the rest compile. Needs no GPU.
#pragma once

#include "codegen/codegen.h"
#include "runtime/nvrtc_compiler.h"
#include "tuner/bench.h"
#include "tuner/space.h"

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace attnjit::tuner {

// Spec + config -> kernel source. Tests substitute a broken kernel for one config through it.
using GenerateFn = std::function<codegen::GeneratedKernel(const KernelSpec&, const TileConfig&)>;
// Request -> CUBIN. Tests substitute a fake compiler through it.
using CompileFn = std::function<runtime::CompiledProgram(const runtime::CompileRequest&)>;

// The default GenerateFn: codegen::generate, the forward or the backward by spec.pass.
codegen::GeneratedKernel generate_kernel(const KernelSpec& spec, const TileConfig& config);

// What identifies a CUBIN in the binary cache (cache::BinaryKey): kept for the winner, so a plan
// that finds the tuned config can load its CUBIN without running NVRTC.
struct CompiledSource {
  std::string source;
  std::vector<std::string> name_expressions;
  std::vector<std::string> options; // exactly as passed to NVRTC
};

struct CompileResult {
  CompiledCandidate candidate; // cubin and launch shape, when verdict.ok()
  CompiledSource source;
  Verdict verdict; // pruned after compiling: spills, or NVRTC's error
  std::vector<runtime::ResourceUsage> usage;
  double compile_ms = 0;
  bool cancelled = false; // never compiled: the search ended first
};

struct CompileContext {
  AttentionProblem problem;
  codegen::ArchLimits device;
  PruneRules rules;
  GenerateFn generate; // empty: generate_kernel
  CompileFn compile;   // empty: runtime::compile
};

// Generates, compiles and applies can_implement with ptxas' resources. `baseline` (the default
// config) is never pruned for spills: it is what the tuned config is measured against.
CompileResult compile_candidate(const CompileContext& context, int id, const TileConfig& config,
                                bool baseline);

// A fixed set of threads running queued jobs in order of submission.
class ThreadPool {
public:
  explicit ThreadPool(int threads = 0); // 0: one per hardware thread
  ~ThreadPool();                        // runs what is queued, then joins
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  void submit(std::function<void()> job);
  int size() const { return int(threads_.size()); }

private:
  void work();
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

// Results in the order they finish: jobs push, one consumer pops.
template <class T> class Channel {
public:
  void push(T value) {
    {
      std::lock_guard lock(mutex_);
      items_.push_back(std::move(value));
    }
    ready_.notify_one();
  }
  T pop() {
    std::unique_lock lock(mutex_);
    ready_.wait(lock, [&] { return !items_.empty(); });
    T value = std::move(items_.front());
    items_.pop_front();
    return value;
  }

private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<T> items_;
};

} // namespace attnjit::tuner

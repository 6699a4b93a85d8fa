// Describe the problem once, get a reusable plan, run it many times.
//
//   attnjit::ForwardPlan plan(problem);         // codegen + NVRTC + module load happen here
//   plan.run(args, stream);                      // no allocation, no sync, no compilation
//
// run() only validates the arguments and enqueues one kernel on the caller's stream, so it can
// be captured in a CUDA graph.
#pragma once

#include <attnjit/cache.h>
#include <attnjit/spec.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

struct CUstream_st; // the driver's CUstream is a CUstream_st*; no cuda.h needed here

namespace attnjit {

using Stream = CUstream_st*;

// One [batch, seq, head, dim] tensor in device memory. Strides are in elements; the last
// (head-dim) dimension is contiguous. A packed [B, S, 3, H, D] QKV buffer is three views of
// one allocation: q at data, k at data + H*D, v at data + 2*H*D, each with seq_stride 3*H*D.
struct TensorView {
  const void* data = nullptr;
  int64_t batch_stride = 0;
  int64_t seq_stride = 0;
  int64_t head_stride = 0;
};

// Contiguous [B, S, H, D] strides.
TensorView contiguous_bshd(const void* data, int64_t seqlen, int64_t heads, int64_t head_dim);

struct ForwardArgs {
  TensorView q, k, v;   // for Layout::v_in_k, v is k's view again: V is K's first Dv columns
  TensorView o;         // written: [B, Sq, H, Dv]
  float* lse = nullptr; // written: [B, H, Sq] natural-log logsumexp of the scaled scores
};

// Opt-in tuning when the tuning database has nothing for a problem: neither its shape nor its
// shape's bucket (docs/CACHE.md, "Tune on miss"). Off by default: a plan then never tunes,
// because tuning takes seconds to minutes of GPU time in the caller's thread. Of all the
// processes and threads that miss one key, one tunes it and writes the record; the others wait
// for that record (config_source() says `waited`) or, after `wait`, take the default config
// (cache_warnings() says why).
struct TuneOnMiss {
  bool enabled = false;
  // The process candidates run in, e.g. {"/usr/bin/attnjit", "tune-worker"} ("--device=N" and
  // "--fd=3" are appended): a candidate that faults then costs a worker restart. Empty: they run
  // in this process, where a faulting candidate would leave the device's CUDA context unusable.
  std::vector<std::string> worker;
  // While another process (or thread) tunes the same key, how long to wait for its record before
  // taking the default config.
  std::chrono::seconds wait{600};
  // > 0: stop timing new candidates after this long (the default config is always timed).
  std::chrono::seconds budget{0};
};

struct PlanOptions {
  int device = 0;
  TuneOnMiss tune_on_miss;
};

class ForwardPlan {
public:
  // config == nullopt: the tuning database's config for this problem on this device, else the
  // default TileConfig (docs/CACHE.md, "Lookup").
  explicit ForwardPlan(const AttentionProblem& problem,
                       std::optional<TileConfig> config = std::nullopt, int device = 0);
  // The database's config, with options: the device, and tuning on a miss.
  ForwardPlan(const AttentionProblem& problem, const PlanOptions& options);
  ~ForwardPlan();
  ForwardPlan(ForwardPlan&&) noexcept;
  ForwardPlan& operator=(ForwardPlan&&) noexcept;

  const AttentionProblem& problem() const;
  const TileConfig& config() const;
  // Throws Error(invalid_argument) naming a null, misaligned or overlapping argument.
  void run(const ForwardArgs& args, Stream stream) const;

  // Where config() came from: the tuning database (the exact shape or its bucket), the default
  // table, or tuning on a miss (this plan tuned it, or waited for the process that did); nullopt
  // when the caller passed the config. docs/CACHE.md has the lookup order.
  std::optional<cache::LookupSource> config_source() const;
  bool binary_from_cache() const; // the cubin came from the database: no NVRTC work
  // Problems with the databases met while planning (each reported once per process).
  const std::vector<std::string>& cache_warnings() const;

  // Resources of the loaded kernel, for reports and pruning.
  int registers_per_thread() const;
  int shared_memory_bytes() const;
  int local_memory_bytes() const; // > 0 means register spills

private:
  ForwardPlan(const AttentionProblem& problem, std::optional<TileConfig> config,
              const PlanOptions& options);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Gradients of the forward's inputs. The plan's spec has pass == Pass::backward; the other
// fields match the forward's. For packed QKV, dq/dk/dv are the three slices of one packed
// [B, S, 3, H, D] gradient buffer, exactly like q/k/v.
struct BackwardArgs {
  TensorView q, k, v;
  TensorView o;               // the forward's output
  TensorView dout;            // dO, any strides
  const float* lse = nullptr; // the forward's [B, H, Sq] logsumexp
  TensorView dq, dk, dv;      // written
  // Device memory of at least BackwardPlan::workspace_bytes(), 16-byte aligned, used only
  // during the run (D = rowsum(dO * O) and the fp32 dQ accumulator).
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
};

class BackwardPlan {
public:
  // config == nullopt: the tuning database's config of the backward's main (dK/dV) kernel, else
  // its default TileConfig on this device.
  explicit BackwardPlan(const AttentionProblem& problem,
                        std::optional<TileConfig> config = std::nullopt, int device = 0);
  BackwardPlan(const AttentionProblem& problem, const PlanOptions& options); // as ForwardPlan's
  ~BackwardPlan();
  BackwardPlan(BackwardPlan&&) noexcept;
  BackwardPlan& operator=(BackwardPlan&&) noexcept;

  const AttentionProblem& problem() const;
  const TileConfig& config() const;
  // Known at plan time, so host apps can allocate once; run() allocates nothing.
  size_t workspace_bytes() const;
  // Enqueues the D pre-pass, the dK/dV kernel (with dQ accumulation) and the dQ conversion.
  // dK/dV are deterministic; dQ's fp32 atomics are not (the order of additions varies) unless
  // the spec asks for `deterministic`, which computes dQ in a kernel of its own.
  void run(const BackwardArgs& args, Stream stream) const;

  std::optional<cache::LookupSource> config_source() const; // as ForwardPlan's
  bool binary_from_cache() const;
  const std::vector<std::string>& cache_warnings() const;

  int registers_per_thread() const; // of the main kernel
  int shared_memory_bytes() const;
  int local_memory_bytes() const;

private:
  BackwardPlan(const AttentionProblem& problem, std::optional<TileConfig> config,
               const PlanOptions& options);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

} // namespace attnjit

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
  TensorView q, k, v;
  TensorView o;         // written: [B, Sq, H, Dv]
  float* lse = nullptr; // written: [B, H, Sq] natural-log logsumexp of the scaled scores
};

class ForwardPlan {
public:
  // config == nullopt: the default TileConfig for this problem on this device.
  explicit ForwardPlan(const AttentionProblem& problem,
                       std::optional<TileConfig> config = std::nullopt, int device = 0);
  ~ForwardPlan();
  ForwardPlan(ForwardPlan&&) noexcept;
  ForwardPlan& operator=(ForwardPlan&&) noexcept;

  const AttentionProblem& problem() const;
  const TileConfig& config() const;
  // Throws Error(invalid_argument) naming a null, misaligned or overlapping argument.
  void run(const ForwardArgs& args, Stream stream) const;

  // Where config() came from: the tuning database (the exact shape or its bucket) or the default
  // table; nullopt when the caller passed the config. docs/CACHE.md has the lookup order.
  std::optional<cache::LookupSource> config_source() const;
  bool binary_from_cache() const; // the cubin came from the database: no NVRTC work
  // Problems with the databases met while planning (each reported once per process).
  const std::vector<std::string>& cache_warnings() const;

  // Resources of the loaded kernel, for reports and pruning.
  int registers_per_thread() const;
  int shared_memory_bytes() const;
  int local_memory_bytes() const; // > 0 means register spills

private:
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
  // config == nullopt: the default TileConfig of the backward's main kernel on this device.
  explicit BackwardPlan(const AttentionProblem& problem,
                        std::optional<TileConfig> config = std::nullopt, int device = 0);
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
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

} // namespace attnjit

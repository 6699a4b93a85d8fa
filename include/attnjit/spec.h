// What to compute (KernelSpec + AttentionShape: the cache key) and how to tile it
// (TileConfig: the cache value). Plain aggregates shared by codegen, tuner and cache.
#pragma once

#include <cstdint>
#include <string>

namespace attnjit {

enum class Pass { forward, backward };
enum class DType { bf16, fp16 };
enum class Mask { none, causal };
// How Q, K and V arrive. packed_qkv: one [B, S, 3, H, D] buffer (MHSA with fused QKV).
// v_in_k: no V tensor; V is the first head_dim_v columns of K, as in absorbed MLA's latent cache
// (head dims 576/512). The kernel reads those bytes once, for both roles, and ForwardArgs::v
// must be K's view.
enum class Layout { separate, packed_qkv, v_in_k };

const char* to_string(Pass);
const char* to_string(DType);
const char* to_string(Mask);
const char* to_string(Layout);

struct KernelSpec {
  Pass pass = Pass::forward;
  DType dtype = DType::bf16;
  int head_dim_qk = 128;
  int head_dim_v = 128;
  int num_heads = 32;    // query heads
  int num_kv_heads = 32; // num_heads % num_kv_heads == 0; 1 is MQA
  Layout layout = Layout::separate;
  Mask mask = Mask::none;
  // Backward only: the same bits on every run. dQ then comes from a kernel of its own instead of
  // fp32 atomics, which costs about 40% more backward work (docs/PERF.md).
  bool deterministic = false;

  bool operator==(const KernelSpec&) const = default;
};

// "mhsa" (packed), "mha", "gqa", "mqa" or "mla" (head_dim_qk != head_dim_v).
const char* attention_type(const KernelSpec&);

struct AttentionShape {
  int64_t batch = 1;
  int64_t seqlen_q = 4096;
  int64_t seqlen_k = 4096;

  bool operator==(const AttentionShape&) const = default;
};

struct AttentionProblem {
  KernelSpec spec;
  AttentionShape shape;
  float softmax_scale = 0.0f; // 0 means 1/sqrt(head_dim_qk)

  bool operator==(const AttentionProblem&) const = default;
};

// Everything codegen may vary for one spec. The forward's warps each own block_m / num_warps
// query rows; for head_dim_v > 256 (the wide-Dv forward) each owns all block_m rows of a
// head_dim_v / num_warps column slice of O instead.
struct TileConfig {
  int block_m = 128;           // query rows per CTA
  int block_n = 64;            // keys per main-loop step
  int num_warps = 4;           //
  int num_stages = 2;          // K/V shared-memory pipeline depth
  bool q_in_registers = false; // keep Q fragments in registers instead of re-reading shared memory
  // Hopper's warpgroup MMA (wgmma, sm_90a only): each group of 4 warps owns 64 query rows, so
  // block_m = 16 * num_warps, and reads Q, K and V straight from shared memory.
  bool wgmma = false;
  // With wgmma: one extra warpgroup only loads (TMA into a shared-memory ring, mbarrier
  // hand-off) while the other warpgroups compute, each owning 64 query rows (forward:
  // block_m = 16 * (num_warps - 4)) or 64 keys (backward: block_n = 16 * (num_warps - 4)).
  bool warp_specialized = false;

  bool operator==(const TileConfig&) const = default;
};

float effective_softmax_scale(const AttentionProblem&);

// Floating-point work as the benchmark counts it: 2*B*H*Sq*Sk*(Dqk + Dv) forward, i.e.
// 4*B*H*Sq*Sk*D for equal head dims (half when causal), 2.5x that backward.
double flop_count(const AttentionProblem&);

std::string to_string(const KernelSpec&);
std::string to_string(const AttentionShape&);
std::string to_string(const TileConfig&);
// A readable kernel name, e.g. "fwd_gqa_d128_bf16_causal_m128n64w4s2".
std::string kernel_slug(const KernelSpec&, const TileConfig&);

// Throws Error(invalid_argument/unsupported) naming the first problem found.
void validate(const KernelSpec&);
void validate(const AttentionProblem&);

} // namespace attnjit

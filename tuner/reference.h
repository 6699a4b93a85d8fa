// Host-side truth for checking kernels: random inputs, an fp64 reference, and a "plain"
// implementation in the kernel's own low precision whose error sets the tolerance
// (FlashAttention's rule: kernel error <= 2x plain error + a small floor).
#pragma once

#include <attnjit/spec.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace attnjit::tuner {

// bf16/fp16 <-> float on the host (round to nearest even).
uint16_t to_bits(float value, DType dtype);
float from_bits(uint16_t bits, DType dtype);
inline float round_to(float value, DType dtype) {
  return from_bits(to_bits(value, dtype), dtype);
}
// Whole tensors for upload, converted on all cores (a B=1100, H=64 input is 77M values).
std::vector<uint16_t> to_bits(std::span<const float> values, DType dtype);
// How many of `values` are NaN; on all cores, since the tuner scans every output of every
// candidate (tens of millions of values).
int64_t count_nan(std::span<const uint16_t> values, DType dtype);

// One problem's inputs on the host: contiguous [B, S, heads, D] floats, each exactly
// representable in the spec's dtype. q: [B, Sq, H, Dqk]; k: [B, Sk, KV, Dqk]; v: [B, Sk, KV, Dv].
struct HostAttentionData {
  AttentionProblem problem;
  std::vector<float> q, k, v;
};

// Fresh normal(0, 1) inputs rounded to the dtype. Never zeros. For Layout::v_in_k, v is a copy
// of K's first Dv columns (the kernels read those from K), so the references need not know.
HostAttentionData random_inputs(const AttentionProblem& problem, uint64_t seed);

struct RowId {
  int64_t batch, head, query;
};

std::vector<RowId> all_rows(const AttentionProblem& problem);
// `count` distinct rows drawn at random (all rows when there are fewer), always including the
// first and last query of the first and last (batch, head).
std::vector<RowId> sample_rows(const AttentionProblem& problem, int64_t count, uint64_t seed);

// Per-row results: o is rows.size() x Dv, lse is rows.size() (natural log; -inf for a row that
// sees no key, whose output is then 0).
struct ForwardRows {
  std::vector<RowId> rows;
  std::vector<double> o;
  std::vector<double> lse;
};

// fp64 math on the (already rounded) inputs.
ForwardRows reference_forward(const HostAttentionData& data, const std::vector<RowId>& rows);
// The plain low-precision way (as PyTorch's math backend in bf16/fp16): scores rounded to the
// dtype, softmax in fp32 rounded to the dtype, P V accumulated in fp32 and rounded.
ForwardRows plain_forward(const HostAttentionData& data, const std::vector<RowId>& rows);

struct Comparison {
  double max_abs_error = 0;       // kernel vs fp64 reference, over O
  double plain_max_abs_error = 0; // plain low precision vs fp64 reference
  double tolerance = 0;           // 2 * plain + floor
  // |kernel - reference| / max(1, |reference|) over rows that see a key; infinite when the
  // kernel says -inf there.
  double max_lse_error = 0;
  double lse_tolerance = 0;
  int64_t nan_mismatches = 0;       // NaN in the kernel's O or LSE where the reference has none
  int64_t empty_row_mismatches = 0; // rows that see no key whose O is not exactly 0 or LSE not -inf
  bool passed = false;
  std::string summary; // one line for logs and test failures
};

// The floor under the tolerance: what rounding alone costs where the plain error is ~0
// (a row that sees one key reproduces V exactly in both).
inline double default_abs_floor(DType dtype) {
  return dtype == DType::bf16 ? 2e-3 : 1e-3;
}

// kernel: the device results gathered for the same rows (o as rows x Dv, lse per row).
// Throws Error(invalid_argument) when the three disagree on rows or Dv.
Comparison compare_forward(const ForwardRows& reference, const ForwardRows& plain,
                           const ForwardRows& kernel, double error_factor = 2.0,
                           double abs_floor = 1e-3, double lse_tolerance = 1e-3);

} // namespace attnjit::tuner

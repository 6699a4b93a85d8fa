// Host-side truth for the backward pass: random dO, fp64 reference gradients, a "plain"
// implementation in the kernel's own low precision whose error sets the tolerance, and the
// comparison (the rule: dQ/dK/dV error <= 3x plain error + a small floor).
//
// The loss is L = sum(dO * O) with O = softmax(scale * Q K^T + mask) V, so
//   P = exp(scale * Q K^T - LSE),  D = rowsum(dO * O),  dP = dO V^T,  dS = P * (dP - D),
//   dV = P^T dO,  dQ = scale * dS K,  dK = scale * dS^T Q,
// with dK and dV of a KV head summed over the query heads of its group (GQA/MQA). Rows that see
// no key (causal, Sq > Sk; or Sk = 0) have P = 0: their dQ is 0 and they add nothing to dK/dV.
#pragma once

#include "tuner/reference.h"

#include <attnjit/spec.h>

#include <cstdint>
#include <string>
#include <vector>

namespace attnjit::tuner {

// The backward's host inputs: the forward's, plus the gradient of the output.
struct HostBackwardData {
  HostAttentionData inputs; // q, k, v (inputs.problem's pass does not matter here)
  std::vector<float> dout;  // [B, Sq, H, Dv] contiguous, each value exact in the dtype
};

// random_inputs(problem, seed) plus fresh normal(0, 1) dO rounded to the dtype (never zero),
// independent of the thread count like random_inputs.
HostBackwardData random_backward_inputs(const AttentionProblem& problem, uint64_t seed);

// One row of dK and dV: key `key` of KV head `kv_head` in batch `batch`.
struct KeyId {
  int64_t batch, kv_head, key;
};

std::vector<KeyId> all_keys(const AttentionProblem& problem);
// `count` distinct keys drawn at random (all keys when there are fewer), always including the
// first and last key of the first and last (batch, KV head), in memory order. max_groups > 0
// draws them from at most that many (batch, KV head) pairs (the first, the last, then random
// ones): each pair costs the reference a forward over all queries of its group.
std::vector<KeyId> sample_keys(const AttentionProblem& problem, int64_t count, uint64_t seed,
                               int64_t max_groups = 0);

// Gradients for chosen dQ rows and dK/dV rows. A dK/dV row needs every query of its group, so
// the reference's cost grows with the number of distinct (batch, KV head) pairs among `keys`:
// sampling keys from few of them keeps a large problem cheap.
struct BackwardRows {
  std::vector<RowId> rows;       // dQ rows
  std::vector<KeyId> keys;       // dK and dV rows
  std::vector<double> dq;        // rows.size() x Dqk
  std::vector<double> dk;        // keys.size() x Dqk
  std::vector<double> dv;        // keys.size() x Dv
  std::vector<uint8_t> row_seen; // per dQ row: 1 when it sees a key (set by the references only)
};

// fp64 math on the (already rounded) inputs, with O and LSE recomputed in fp64.
BackwardRows reference_backward(const HostBackwardData& data, const std::vector<RowId>& rows,
                                const std::vector<KeyId>& keys);
// The plain low-precision way, as PyTorch's math backend in bf16/fp16 does it: the forward of
// plain_forward (its O rounded to the dtype gives D), dP = dO V^T and dS = P * (dP - D) rounded
// to the dtype, the gradient GEMMs accumulated in fp32 and rounded.
BackwardRows plain_backward(const HostBackwardData& data, const std::vector<RowId>& rows,
                            const std::vector<KeyId>& keys);

struct GradientError {
  double max_abs_error = 0;       // kernel vs fp64 reference
  double plain_max_abs_error = 0; // plain vs fp64 reference
  double tolerance = 0;           // error_factor * plain + floor
  int64_t nan_mismatches = 0;     // NaN in the kernel's value where the reference has none
  std::string worst;              // where the largest kernel error is, for the summary
};

struct BackwardComparison {
  GradientError dq, dk, dv;
  int64_t empty_row_mismatches = 0; // dQ rows that see no key but are not exactly 0
  bool passed = false;
  std::string summary; // one line for logs and test failures
};

// The floor under the tolerance. bf16 gradients are sums of many terms each rounded to 8 bits, so
// a gradient near 0 (where the plain error happens to be tiny) still carries ~1e-3 of noise.
inline double default_backward_abs_floor(DType dtype) {
  return dtype == DType::bf16 ? 3e-3 : 1e-3;
}

// kernel: the device's gradients gathered for the same rows and keys. Throws
// Error(invalid_argument) when the three disagree on rows, keys or head dims.
BackwardComparison compare_backward(const BackwardRows& reference, const BackwardRows& plain,
                                    const BackwardRows& kernel, double error_factor = 3.0,
                                    double abs_floor = 3e-3);

} // namespace attnjit::tuner

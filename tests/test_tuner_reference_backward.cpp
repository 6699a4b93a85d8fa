// The backward reference that every backward GPU test trusts: its fp64 gradients against finite
// differences of the fp64 forward, GQA summation, rows that see no key, sampling, the plain
// low-precision version, and the comparison rule.
#include "tuner/reference.h"
#include "tuner/reference_backward.h"

#include <attnjit/error.h>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <tuple>
#include <vector>

using namespace attnjit;
using namespace attnjit::tuner;

namespace {

AttentionProblem problem_of(DType dtype, Mask mask, AttentionShape shape, int heads, int kv_heads,
                            int dim, float scale = 0.0f) {
  AttentionProblem problem;
  problem.spec.pass = Pass::backward;
  problem.spec.dtype = dtype;
  problem.spec.head_dim_qk = problem.spec.head_dim_v = dim;
  problem.spec.num_heads = heads;
  problem.spec.num_kv_heads = kv_heads;
  problem.spec.mask = mask;
  problem.shape = shape;
  problem.softmax_scale = scale;
  return problem;
}

// L = sum(dO * O) in fp64, the loss whose gradients the backward computes.
double loss(const HostBackwardData& data) {
  const AttentionProblem& p = data.inputs.problem;
  const ForwardRows forward = reference_forward(data.inputs, all_rows(p));
  const int64_t dv = p.spec.head_dim_v;
  double sum = 0;
  for (size_t r = 0; r < forward.rows.size(); ++r) { // rows run (b, h, i); dO is [B, Sq, H, Dv]
    const RowId& row = forward.rows[r];
    const float* d_o =
        &data.dout[((row.batch * p.shape.seqlen_q + row.query) * p.spec.num_heads + row.head) * dv];
    for (int64_t d = 0; d < dv; ++d)
      sum += d_o[d] * forward.o[r * dv + d];
  }
  return sum;
}

// dL/dx for every element of one input tensor by central differences. The step is a power of two
// small enough that x +- step is exact in float for the |x| < 8 that normal inputs have.
std::vector<double> finite_differences(HostBackwardData data,
                                       std::vector<float> HostAttentionData::*tensor) {
  constexpr float kStep = 1.0f / 1024;
  std::vector<float>& x = data.inputs.*tensor;
  std::vector<double> gradient(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const float saved = x[i];
    x[i] = saved + kStep;
    const double up = loss(data);
    x[i] = saved - kStep;
    const double down = loss(data);
    x[i] = saved;
    gradient[i] = (up - down) / (2.0 * kStep);
  }
  return gradient;
}

double max_abs_difference(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

double max_abs(const std::vector<double>& a) {
  double worst = 0;
  for (double x : a)
    worst = std::max(worst, std::abs(x));
  return worst;
}

} // namespace

TEST_SUITE("tuner.reference_backward") {

  TEST_CASE("fp64 gradients match finite differences of the fp64 forward") {
    // B=1, H=2, KV=1 (so dK/dV sum two query heads), D=4; the second scale is not 1/sqrt(D), so a
    // gradient that forgot or doubled the scale shows. Sq=5 > Sk=3 causal has two empty rows.
    for (auto [mask, sq, sk, scale] :
         {std::tuple{Mask::none, 3, 3, 0.0f}, std::tuple{Mask::causal, 3, 3, 0.0f},
          std::tuple{Mask::none, 2, 4, 0.7f}, std::tuple{Mask::causal, 2, 4, 0.7f},
          std::tuple{Mask::causal, 5, 3, 0.0f}}) {
      const AttentionProblem problem = problem_of(DType::bf16, mask, {1, sq, sk}, 2, 1, 4, scale);
      INFO(fmt::format("{} Sq={} Sk={} scale {}", to_string(mask), sq, sk, scale));
      const HostBackwardData data = random_backward_inputs(problem, 17 + sq * 10 + sk);
      const BackwardRows grads = reference_backward(data, all_rows(problem), all_keys(problem));
      // Central differences are off by O(step^2) ~ 1e-6 times the third derivative.
      constexpr double kTolerance = 1e-5;
      // dQ comes in all_rows' (b, h, i) order, q is [B, Sq, H, D]; with KV = 1, dK and dV's
      // (b, kv, j) order is the layout's.
      const std::vector<double> fd_q = finite_differences(data, &HostAttentionData::q);
      std::vector<double> dq_by_row;
      for (const RowId& row : grads.rows)
        for (int64_t d = 0; d < 4; ++d)
          dq_by_row.push_back(fd_q[((row.batch * sq + row.query) * 2 + row.head) * 4 + d]);
      CHECK(max_abs_difference(grads.dq, dq_by_row) < kTolerance);
      CHECK(max_abs_difference(grads.dk, finite_differences(data, &HostAttentionData::k)) <
            kTolerance);
      CHECK(max_abs_difference(grads.dv, finite_differences(data, &HostAttentionData::v)) <
            kTolerance);
      // Something to check: gradients far from 0 (a reference returning zeros would pass above
      // only if the loss did not depend on the inputs).
      CHECK(max_abs(grads.dv) > 0.1);
      CHECK(max_abs(grads.dq) > 1e-3);
    }
  }

  TEST_CASE("GQA: dK and dV of a KV head are the sums over its query heads") {
    // The same attention as MHA with K and V repeated for each query head of a group.
    for (Mask mask : {Mask::none, Mask::causal}) {
      const AttentionProblem gqa = problem_of(DType::fp16, mask, {2, 7, 9}, 4, 2, 16);
      const HostBackwardData data = random_backward_inputs(gqa, 5);
      AttentionProblem mha_problem = gqa;
      mha_problem.spec.num_kv_heads = 4;
      HostBackwardData mha = data;
      mha.inputs.problem = mha_problem;
      mha.inputs.k.clear();
      mha.inputs.v.clear();
      const int64_t d = 16;
      for (int64_t b = 0; b < 2; ++b)
        for (int64_t j = 0; j < 9; ++j)
          for (int64_t h = 0; h < 4; ++h) {
            const int64_t src = ((b * 9 + j) * 2 + h / 2) * d;
            mha.inputs.k.insert(mha.inputs.k.end(), data.inputs.k.begin() + src,
                                data.inputs.k.begin() + src + d);
            mha.inputs.v.insert(mha.inputs.v.end(), data.inputs.v.begin() + src,
                                data.inputs.v.begin() + src + d);
          }
      const BackwardRows g = reference_backward(data, all_rows(gqa), all_keys(gqa));
      const BackwardRows m = reference_backward(mha, all_rows(mha_problem), all_keys(mha_problem));
      CHECK(max_abs_difference(g.dq, m.dq) < 1e-12);
      // all_keys runs b, kv, key: MHA key (b, h, j) is at (b * 4 + h) * 9 + j.
      double worst = 0;
      for (size_t k = 0; k < g.keys.size(); ++k) {
        const KeyId& key = g.keys[k];
        for (int64_t dd = 0; dd < d; ++dd) {
          double dk = 0, dv = 0;
          for (int64_t h = key.kv_head * 2; h < key.kv_head * 2 + 2; ++h) {
            const int64_t mk = (key.batch * 4 + h) * 9 + key.key;
            dk += m.dk[mk * d + dd];
            dv += m.dv[mk * d + dd];
          }
          worst =
              std::max({worst, std::abs(dk - g.dk[k * d + dd]), std::abs(dv - g.dv[k * d + dd])});
        }
      }
      CHECK(worst < 1e-12);
    }
  }

  TEST_CASE("rows that see no key: dQ = 0 and nothing added to dK/dV") {
    // Causal Sq=6 > Sk=2: queries 0..3 see no key; queries 4, 5 see keys 0 and 0..1.
    const AttentionProblem problem = problem_of(DType::bf16, Mask::causal, {1, 6, 2}, 2, 1, 8);
    const HostBackwardData data = random_backward_inputs(problem, 99);
    for (const BackwardRows& grads :
         {reference_backward(data, all_rows(problem), all_keys(problem)),
          plain_backward(data, all_rows(problem), all_keys(problem))}) {
      for (size_t r = 0; r < grads.rows.size(); ++r) {
        const bool seen = grads.rows[r].query >= 4;
        CHECK(grads.row_seen[r] == seen);
        if (!seen)
          for (int d = 0; d < 8; ++d)
            CHECK(grads.dq[r * 8 + d] == 0.0);
      }
      for (double x : grads.dk)
        CHECK(std::isfinite(x));
    }
    // The same dK/dV from only the two queries that see keys (Sq = Sk = 2).
    const AttentionProblem last_two = problem_of(DType::bf16, Mask::causal, {1, 2, 2}, 2, 1, 8);
    HostBackwardData trimmed = data;
    trimmed.inputs.problem = last_two;
    const int64_t row = 2 * 8; // one query position of all heads
    trimmed.inputs.q.assign(data.inputs.q.begin() + 4 * row, data.inputs.q.end());
    trimmed.dout.assign(data.dout.begin() + 4 * row, data.dout.end());
    const BackwardRows full = reference_backward(data, {}, all_keys(problem));
    const BackwardRows small = reference_backward(trimmed, {}, all_keys(last_two));
    CHECK(max_abs_difference(full.dk, small.dk) < 1e-12);
    CHECK(max_abs_difference(full.dv, small.dv) < 1e-12);

    // seqlen_k = 0: every row is empty; no keys; no NaN.
    const AttentionProblem no_keys = problem_of(DType::fp16, Mask::none, {2, 3, 0}, 2, 2, 8);
    const HostBackwardData empty = random_backward_inputs(no_keys, 3);
    const BackwardRows grads = reference_backward(empty, all_rows(no_keys), all_keys(no_keys));
    CHECK(all_keys(no_keys).empty());
    CHECK(std::all_of(grads.dq.begin(), grads.dq.end(), [](double x) { return x == 0.0; }));
    CHECK(std::none_of(grads.row_seen.begin(), grads.row_seen.end(), [](uint8_t s) { return s; }));
  }

  TEST_CASE("seqlen_k = 1: P = 1, so dQ = dK = 0 and dV sums dO over the group") {
    const AttentionProblem problem = problem_of(DType::bf16, Mask::none, {1, 5, 1}, 4, 2, 8);
    const HostBackwardData data = random_backward_inputs(problem, 11);
    const BackwardRows grads = reference_backward(data, all_rows(problem), all_keys(problem));
    CHECK(max_abs(grads.dq) < 1e-12);
    CHECK(max_abs(grads.dk) < 1e-12);
    for (int64_t kv = 0; kv < 2; ++kv)
      for (int64_t d = 0; d < 8; ++d) {
        double sum = 0;
        for (int64_t i = 0; i < 5; ++i)
          for (int64_t h = 2 * kv; h < 2 * kv + 2; ++h)
            sum += data.dout[(i * 4 + h) * 8 + d];
        CHECK(grads.dv[kv * 8 + d] == doctest::Approx(sum).epsilon(1e-12));
      }
  }

  TEST_CASE("plain low precision is close to the reference, not equal") {
    for (DType dtype : {DType::bf16, DType::fp16})
      for (Mask mask : {Mask::none, Mask::causal}) {
        const AttentionProblem problem = problem_of(dtype, mask, {1, 40, 50}, 4, 2, 32);
        const HostBackwardData data = random_backward_inputs(problem, 7);
        const std::vector<RowId> rows = all_rows(problem);
        const std::vector<KeyId> keys = all_keys(problem);
        const BackwardRows ref = reference_backward(data, rows, keys);
        const BackwardRows plain = plain_backward(data, rows, keys);
        CHECK(plain.row_seen == ref.row_seen);
        // Relative to the gradient's size: bf16 keeps 8 bits, fp16 11.
        const double bound = dtype == DType::bf16 ? 5e-2 : 1e-2;
        for (auto [r, p] : {std::pair{&ref.dq, &plain.dq}, std::pair{&ref.dk, &plain.dk},
                            std::pair{&ref.dv, &plain.dv}}) {
          const double error = max_abs_difference(*r, *p);
          CHECK(error > 0.0);
          CHECK(error < bound * max_abs(*r));
        }
      }
  }

  TEST_CASE("compare_backward catches what it must") {
    const AttentionProblem problem = problem_of(DType::bf16, Mask::causal, {1, 20, 12}, 2, 1, 16);
    const HostBackwardData data = random_backward_inputs(problem, 23);
    const std::vector<RowId> rows = all_rows(problem);
    const std::vector<KeyId> keys = all_keys(problem);
    const BackwardRows ref = reference_backward(data, rows, keys);
    const BackwardRows plain = plain_backward(data, rows, keys);
    const double floor = default_backward_abs_floor(DType::bf16);

    const BackwardComparison same = compare_backward(ref, plain, plain, 3.0, floor);
    CHECK_MESSAGE(same.passed, same.summary);
    CHECK(same.dq.max_abs_error == same.dq.plain_max_abs_error);
    CHECK(same.dk.tolerance == doctest::Approx(3 * same.dk.plain_max_abs_error + floor));
    CHECK(compare_backward(ref, plain, ref, 3.0, floor).passed);

    // A wrong value in each gradient, just past the tolerance.
    for (auto member : {&BackwardRows::dq, &BackwardRows::dk, &BackwardRows::dv}) {
      BackwardRows bad = ref;
      const GradientError& e = member == &BackwardRows::dq   ? same.dq
                               : member == &BackwardRows::dk ? same.dk
                                                             : same.dv;
      (bad.*member)[(bad.*member).size() - 3] += 1.01 * e.tolerance;
      const BackwardComparison c = compare_backward(ref, plain, bad, 3.0, floor);
      CHECK_FALSE(c.passed);
      CHECK(c.summary.find("FAIL") == 0);
    }
    // NaN where the reference has a number.
    BackwardRows nan = ref;
    nan.dv[5] = std::nan("");
    const BackwardComparison with_nan = compare_backward(ref, plain, nan, 3.0, floor);
    CHECK_FALSE(with_nan.passed);
    CHECK(with_nan.dv.nan_mismatches == 1);
    // A row that sees no key (query 0 of Sq=20 > Sk=12) must be exactly 0, not merely small.
    BackwardRows stale = ref;
    REQUIRE_FALSE(ref.row_seen[0]);
    stale.dq[1] = 1e-6;
    const BackwardComparison not_zero = compare_backward(ref, plain, stale, 3.0, floor);
    CHECK_FALSE(not_zero.passed);
    CHECK(not_zero.empty_row_mismatches == 1);
    // Results of another shape are refused, not compared.
    BackwardRows fewer = ref;
    fewer.keys.pop_back();
    CHECK_THROWS_AS(compare_backward(ref, plain, fewer), Error);
  }

  TEST_CASE("sample_keys") {
    const AttentionProblem problem = problem_of(DType::bf16, Mask::none, {3, 10, 50}, 8, 4, 16);
    CHECK(sample_keys(problem, 1000, 1).size() == all_keys(problem).size());
    CHECK(sample_keys(problem, 0, 1).empty());
    for (int64_t count : {5, 60, 500}) {
      const std::vector<KeyId> keys = sample_keys(problem, count, count);
      CHECK(keys.size() == static_cast<size_t>(count));
      std::set<std::tuple<int64_t, int64_t, int64_t>> distinct;
      for (const KeyId& k : keys) {
        CHECK((k.batch >= 0 && k.batch < 3 && k.kv_head >= 0 && k.kv_head < 4 && k.key >= 0 &&
               k.key < 50));
        distinct.insert({k.batch, k.kv_head, k.key});
      }
      CHECK(distinct.size() == keys.size());
      CHECK(std::is_sorted(keys.begin(), keys.end(), [](const KeyId& a, const KeyId& b) {
        return std::tie(a.batch, a.kv_head, a.key) < std::tie(b.batch, b.kv_head, b.key);
      })); // in memory order
      CHECK(distinct.contains({0, 0, 0}));
      CHECK(distinct.contains({2, 3, 49}));
    }
    // At most two (batch, KV head) pairs: the first and the last.
    std::set<std::pair<int64_t, int64_t>> groups;
    for (const KeyId& k : sample_keys(problem, 40, 9, 2))
      groups.insert({k.batch, k.kv_head});
    CHECK(groups == std::set<std::pair<int64_t, int64_t>>{{0, 0}, {2, 3}});
    groups.clear();
    for (const KeyId& k : sample_keys(problem, 100, 9, 3))
      groups.insert({k.batch, k.kv_head});
    CHECK(groups.size() == 3);
    AttentionProblem no_keys = problem;
    no_keys.shape.seqlen_k = 0;
    CHECK(sample_keys(no_keys, 10, 1).empty());
  }

  TEST_CASE("gradients do not depend on which rows and keys are asked for") {
    const AttentionProblem problem = problem_of(DType::fp16, Mask::causal, {2, 33, 21}, 4, 2, 16);
    const HostBackwardData data = random_backward_inputs(problem, 41);
    const std::vector<RowId> rows = all_rows(problem);
    const std::vector<KeyId> keys = all_keys(problem);
    const std::vector<RowId> some_rows = sample_rows(problem, 20, 3);
    const std::vector<KeyId> some_keys = sample_keys(problem, 15, 3);
    for (bool plain : {false, true}) {
      const BackwardRows all =
          plain ? plain_backward(data, rows, keys) : reference_backward(data, rows, keys);
      const BackwardRows some = plain ? plain_backward(data, some_rows, some_keys)
                                      : reference_backward(data, some_rows, some_keys);
      int64_t different = 0;
      for (size_t r = 0; r < some_rows.size(); ++r) {
        const RowId& row = some_rows[r];
        const size_t index = (row.batch * 4 + row.head) * 33 + row.query; // all_rows' order
        for (int d = 0; d < 16; ++d)
          different += some.dq[r * 16 + d] != all.dq[index * 16 + d];
      }
      for (size_t k = 0; k < some_keys.size(); ++k) {
        const KeyId& key = some_keys[k];
        const size_t index = (key.batch * 2 + key.kv_head) * 21 + key.key; // all_keys' order
        for (int d = 0; d < 16; ++d)
          different += (some.dk[k * 16 + d] != all.dk[index * 16 + d]) +
                       (some.dv[k * 16 + d] != all.dv[index * 16 + d]);
      }
      CHECK(different == 0);
    }
  }

  TEST_CASE("random dO: rounded to the dtype, never zero, fixed by the seed") {
    const AttentionProblem problem = problem_of(DType::fp16, Mask::none, {2, 30, 10}, 2, 1, 32);
    const HostBackwardData a = random_backward_inputs(problem, 5);
    const HostBackwardData b = random_backward_inputs(problem, 5);
    const HostBackwardData c = random_backward_inputs(problem, 6);
    CHECK(a.dout.size() == size_t(2 * 30 * 2 * 32));
    CHECK(a.dout == b.dout);
    CHECK(a.dout != c.dout);
    CHECK(a.inputs.q == random_inputs(problem, 5).q);
    CHECK(a.dout != a.inputs.q); // not the same stream as q
    for (float x : a.dout) {
      CHECK(x != 0.0f);
      CHECK(round_to(x, DType::fp16) == x);
    }
    HostBackwardData wrong = a;
    wrong.dout.pop_back();
    CHECK_THROWS_AS(reference_backward(wrong, {}, {}), Error);
    CHECK_THROWS_AS(reference_backward(a, {}, {KeyId{0, 1, 0}}), Error); // KV has one head
  }

} // TEST_SUITE

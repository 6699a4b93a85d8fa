// The host reference that every GPU test trusts: conversions, hand-computed attention, masks,
// the comparison rule and row sampling.
#include "tuner/reference.h"

#include <attnjit/error.h>

#include <doctest/doctest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <set>

using namespace attnjit;
using namespace attnjit::tuner;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// Every tie between neighbouring finite values goes to the even one, and anything past the tie
// goes to the nearer one.
void check_round_to_nearest_even(DType dtype, uint16_t last_finite) {
  int64_t wrong = 0;
  for (uint16_t a = 0; a < last_finite; ++a) {
    const uint16_t b = a + 1;
    const float low = from_bits(a, dtype);
    const float mid = low + (from_bits(b, dtype) - low) / 2; // exact; (a + b) / 2 overflows
    wrong += to_bits(mid, dtype) != (a % 2 == 0 ? a : b);
    wrong += to_bits(std::nextafter(mid, kInf), dtype) != b;
    wrong += to_bits(std::nextafter(mid, 0.0f), dtype) != a;
    wrong += to_bits(-mid, dtype) != ((a % 2 == 0 ? a : b) | 0x8000);
  }
  CHECK(wrong == 0);
}

void check_round_trip(DType dtype) {
  int64_t wrong = 0;
  for (uint32_t bits = 0; bits <= 0xffff; ++bits) {
    const float value = from_bits(static_cast<uint16_t>(bits), dtype);
    if (std::isnan(value))
      wrong += !std::isnan(from_bits(to_bits(value, dtype), dtype));
    else
      wrong += to_bits(value, dtype) != bits;
  }
  CHECK(wrong == 0);
}

// A hand-made problem: heads x D tensors filled by the caller.
HostAttentionData tiny(int heads, int kv_heads, int dim, int64_t sq, int64_t sk, Mask mask,
                       float scale) {
  HostAttentionData data;
  data.problem.spec.dtype = DType::bf16;
  data.problem.spec.head_dim_qk = data.problem.spec.head_dim_v = dim;
  data.problem.spec.num_heads = heads;
  data.problem.spec.num_kv_heads = kv_heads;
  data.problem.spec.mask = mask;
  data.problem.shape = {1, sq, sk};
  data.problem.softmax_scale = scale;
  data.q.assign(sq * heads * dim, 0.0f);
  data.k.assign(sk * kv_heads * dim, 0.0f);
  data.v.assign(sk * kv_heads * dim, 0.0f);
  return data;
}

AttentionProblem random_problem(DType dtype, Mask mask, AttentionShape shape, int heads = 4,
                                int kv_heads = 2, int dim = 32) {
  AttentionProblem problem;
  problem.spec.dtype = dtype;
  problem.spec.head_dim_qk = problem.spec.head_dim_v = dim;
  problem.spec.num_heads = heads;
  problem.spec.num_kv_heads = kv_heads;
  problem.spec.mask = mask;
  problem.shape = shape;
  return problem;
}

} // namespace

TEST_SUITE("tuner.reference") {

  TEST_CASE("bf16 conversion") {
    CHECK(to_bits(1.0f, DType::bf16) == 0x3f80);
    CHECK(from_bits(0x3f80, DType::bf16) == 1.0f);
    CHECK(to_bits(-0.0f, DType::bf16) == 0x8000);
    CHECK(to_bits(1.0f + 0x1p-8f, DType::bf16) == 0x3f80);     // tie, down to even
    CHECK(to_bits(1.0f + 3 * 0x1p-8f, DType::bf16) == 0x3f82); // tie, up to even
    CHECK(to_bits(kInf, DType::bf16) == 0x7f80);
    CHECK(to_bits(-kInf, DType::bf16) == 0xff80);
    CHECK(to_bits(std::numeric_limits<float>::max(), DType::bf16) == 0x7f80);
    // A NaN whose payload sits only in the bits bf16 drops must not become infinity.
    CHECK(std::isnan(round_to(std::bit_cast<float>(0x7f800001u), DType::bf16)));
    CHECK(std::isnan(round_to(std::bit_cast<float>(0xff800001u), DType::bf16)));
    check_round_to_nearest_even(DType::bf16, 0x7f7e);
    check_round_trip(DType::bf16);
  }

  TEST_CASE("fp16 conversion") {
    CHECK(to_bits(1.0f, DType::fp16) == 0x3c00);
    CHECK(to_bits(-2.0f, DType::fp16) == 0xc000);
    CHECK(to_bits(65504.0f, DType::fp16) == 0x7bff);
    CHECK(to_bits(65519.996f, DType::fp16) == 0x7bff);
    CHECK(to_bits(65520.0f, DType::fp16) == 0x7c00); // tie past the largest (odd) value: inf
    CHECK(to_bits(1e6f, DType::fp16) == 0x7c00);
    CHECK(to_bits(-kInf, DType::fp16) == 0xfc00);
    CHECK(std::isnan(round_to(std::bit_cast<float>(0x7f800001u), DType::fp16)));
    CHECK(from_bits(0x0001, DType::fp16) == 0x1p-24f); // smallest subnormal
    CHECK(from_bits(0x0400, DType::fp16) == 0x1p-14f); // smallest normal
    CHECK(to_bits(0x1p-25f, DType::fp16) == 0x0000);   // half a unit: tie to even zero
    CHECK(to_bits(0x1.8p-25f, DType::fp16) == 0x0001);
    CHECK(to_bits(3 * 0x1p-25f, DType::fp16) == 0x0002);        // 1.5 units
    CHECK(to_bits(5 * 0x1p-25f, DType::fp16) == 0x0002);        // 2.5 units
    CHECK(to_bits(0x1p-14f - 0x1p-26f, DType::fp16) == 0x0400); // rounds up into the normals
    CHECK(to_bits(1e-10f, DType::fp16) == 0x0000);
    check_round_to_nearest_even(DType::fp16, 0x7bff);
    check_round_trip(DType::fp16);
  }

  TEST_CASE("bulk conversion matches the scalar one") {
    const HostAttentionData data =
        random_inputs(random_problem(DType::fp16, Mask::none, {2, 300, 300}), 7);
    std::vector<float> values = data.q;
    values.insert(values.end(), {kInf, -kInf, 70000.0f, 1e-9f});
    for (DType dtype : {DType::bf16, DType::fp16}) {
      const std::vector<uint16_t> bits = to_bits(values, dtype);
      REQUIRE(bits.size() == values.size());
      int64_t wrong = 0;
      for (size_t i = 0; i < values.size(); ++i)
        wrong += bits[i] != to_bits(values[i], dtype);
      CHECK(wrong == 0);
    }
  }

  TEST_CASE("count_nan counts every NaN bit pattern and nothing else") {
    for (DType dtype : {DType::bf16, DType::fp16}) {
      std::vector<uint16_t> bits(1 << 16);
      int64_t expected = 0;
      for (size_t i = 0; i < bits.size(); ++i) {
        bits[i] = uint16_t(i);
        expected += std::isnan(from_bits(uint16_t(i), dtype));
      }
      // Every pattern once, then the poison word's half and a long run of ones and zeros that
      // crosses the parallel chunks.
      bits.resize(bits.size() + (9 << 20), to_bits(1.0f, dtype));
      bits.push_back(0x7fc0);
      expected += std::isnan(from_bits(0x7fc0, dtype));
      CHECK(expected > 250); // bf16: 2 x 127 patterns and the poison; fp16: 2 x 1023 and it
      CHECK(count_nan(bits, dtype) == expected);
    }
  }

  TEST_CASE("random inputs") {
    const AttentionProblem problem =
        random_problem(DType::bf16, Mask::none, {2, 100, 70}, 4, 2, 64);
    const HostAttentionData data = random_inputs(problem, 42);
    CHECK(data.q.size() == 2u * 100 * 4 * 64);
    CHECK(data.k.size() == 2u * 70 * 2 * 64);
    CHECK(data.v.size() == 2u * 70 * 2 * 64);
    double sum = 0, squares = 0;
    int64_t bad = 0;
    for (float x : data.q) {
      bad += x == 0.0f || round_to(x, DType::bf16) != x;
      sum += x;
      squares += double(x) * x;
    }
    CHECK(bad == 0);
    const double mean = sum / data.q.size();
    CHECK(std::abs(mean) < 0.05);
    CHECK(std::abs(squares / data.q.size() - mean * mean - 1.0) < 0.05);
    CHECK(random_inputs(problem, 42).v == data.v);
    CHECK(random_inputs(problem, 43).v != data.v);
  }

  TEST_CASE("random inputs for v_in_k: V is a copy of K's first Dv columns") {
    AttentionProblem problem;
    problem.spec.head_dim_qk = 576;
    problem.spec.head_dim_v = 512;
    problem.spec.num_heads = 4;
    problem.spec.num_kv_heads = 2;
    problem.spec.layout = Layout::v_in_k;
    problem.shape = {2, 3, 5};
    const HostAttentionData data = random_inputs(problem, 42);
    REQUIRE(data.v.size() == 2u * 5 * 2 * 512);
    int64_t differ = 0;
    for (size_t row = 0; row < 2 * 5 * 2; ++row)
      for (size_t d = 0; d < 512; ++d)
        differ += data.v[row * 512 + d] != data.k[row * 576 + d];
    CHECK(differ == 0);
  }

  TEST_CASE("reference: one query, two keys, by hand") {
    HostAttentionData data = tiny(1, 1, 2, 1, 2, Mask::none, 1.0f);
    data.q = {1, 0};
    data.k = {1, 0, 0, 1}; // scores 1 and 0
    data.v = {1, 2, 3, 4};
    const ForwardRows out = reference_forward(data, all_rows(data.problem));
    const double e = std::exp(1.0), p0 = e / (e + 1), p1 = 1 / (e + 1);
    CHECK(out.o[0] == doctest::Approx(p0 * 1 + p1 * 3).epsilon(1e-14));
    CHECK(out.o[1] == doctest::Approx(p0 * 2 + p1 * 4).epsilon(1e-14));
    CHECK(out.lse[0] == doctest::Approx(std::log(e + 1)).epsilon(1e-14));

    // Scale 0 means 1/sqrt(head_dim): 0.5 for D = 4, so the scores are 2 and 0.
    data = tiny(1, 1, 4, 1, 2, Mask::none, 0.0f);
    data.q = {1, 1, 1, 1};
    data.k = {1, 1, 1, 1, 0, 0, 0, 0};
    data.v = {1, 0, 0, 0, 0, 1, 0, 0};
    const ForwardRows scaled = reference_forward(data, all_rows(data.problem));
    const double e2 = std::exp(2.0);
    CHECK(scaled.o[0] == doctest::Approx(e2 / (e2 + 1)).epsilon(1e-14));
    CHECK(scaled.o[1] == doctest::Approx(1 / (e2 + 1)).epsilon(1e-14));
    CHECK(scaled.lse[0] == doctest::Approx(std::log(e2 + 1)).epsilon(1e-14));
  }

  TEST_CASE("reference: GQA maps query head h to kv head h / (H / KV)") {
    HostAttentionData data = tiny(4, 2, 2, 1, 1, Mask::none, 1.0f);
    data.v = {10, 11, 20, 21};
    for (const ForwardRows& out : {reference_forward(data, all_rows(data.problem)),
                                   plain_forward(data, all_rows(data.problem))}) {
      CHECK(out.o == std::vector<double>{10, 11, 10, 11, 20, 21, 20, 21});
      CHECK(out.lse == std::vector<double>{0, 0, 0, 0});
    }
  }

  TEST_CASE("reference: causal is aligned bottom-right") {
    // Zero scores: O is the mean of the visible values and LSE the log of their count.
    HostAttentionData data = tiny(1, 1, 2, 2, 3, Mask::causal, 1.0f);
    data.v = {0, 0, 1, 2, 2, 4};
    ForwardRows out = reference_forward(data, all_rows(data.problem));
    CHECK(out.o == std::vector<double>{0.5, 1, 1, 2}); // query 0 sees keys 0-1, query 1 all three
    CHECK(out.lse[0] == doctest::Approx(std::log(2.0)));
    CHECK(out.lse[1] == doctest::Approx(std::log(3.0)));
    data.problem.spec.mask = Mask::none;
    out = reference_forward(data, all_rows(data.problem));
    CHECK(out.o == std::vector<double>{1, 2, 1, 2});
  }

  TEST_CASE("reference: rows that see no key give O = 0 and LSE = -inf") {
    HostAttentionData data = tiny(1, 1, 2, 3, 1, Mask::causal, 1.0f); // Sq 3 > Sk 1
    data.q = {1, 1, 1, 1, 1, 1};
    data.k = {1, 0.5f};
    data.v = {3, 4};
    for (const ForwardRows& out : {reference_forward(data, all_rows(data.problem)),
                                   plain_forward(data, all_rows(data.problem))}) {
      CHECK(out.o == std::vector<double>{0, 0, 0, 0, 3, 4});
      CHECK(out.lse[0] == -INFINITY);
      CHECK(out.lse[1] == -INFINITY);
      CHECK(out.lse[2] == doctest::Approx(1.5));
    }
    HostAttentionData empty = tiny(2, 2, 2, 4, 0, Mask::none, 1.0f); // Sk = 0
    for (const ForwardRows& out : {reference_forward(empty, all_rows(empty.problem)),
                                   plain_forward(empty, all_rows(empty.problem))}) {
      CHECK(std::all_of(out.o.begin(), out.o.end(), [](double x) { return x == 0; }));
      CHECK(std::all_of(out.lse.begin(), out.lse.end(), [](double x) { return x == -INFINITY; }));
    }
  }

  TEST_CASE("plain low precision is close to the reference, not equal") {
    for (DType dtype : {DType::bf16, DType::fp16}) {
      const HostAttentionData data =
          random_inputs(random_problem(dtype, Mask::causal, {2, 50, 80}), 3);
      const std::vector<RowId> rows = all_rows(data.problem);
      const ForwardRows reference = reference_forward(data, rows);
      const Comparison c = compare_forward(reference, plain_forward(data, rows), reference);
      CAPTURE(c.summary);
      CHECK(c.plain_max_abs_error > 0);
      CHECK(c.plain_max_abs_error < (dtype == DType::bf16 ? 0.05 : 0.01));
      CHECK(c.passed);
      CHECK(c.max_abs_error == 0);
    }
  }

  TEST_CASE("compare_forward catches what it must") {
    const HostAttentionData data =
        random_inputs(random_problem(DType::bf16, Mask::causal, {1, 20, 10}), 5);
    const std::vector<RowId> rows = all_rows(data.problem); // queries 0-9 see no key
    const ForwardRows reference = reference_forward(data, rows);
    const ForwardRows plain = plain_forward(data, rows);
    const size_t dv = data.problem.spec.head_dim_v;
    const size_t seen = 15 * dv; // row 15 sees keys 0-5
    REQUIRE(reference.lse[15] != -INFINITY);
    REQUIRE(reference.lse[0] == -INFINITY);
    const auto compare = [&](ForwardRows kernel) {
      return compare_forward(reference, plain, kernel, 2.0, 2e-3);
    };

    CHECK(compare(reference).passed);
    ForwardRows kernel = reference;
    kernel.o[seen + 3] += 1e-4;
    CHECK(compare(kernel).passed);
    kernel.o[seen + 3] += 0.5;
    Comparison c = compare(kernel);
    CHECK_FALSE(c.passed);
    CHECK(c.max_abs_error == doctest::Approx(0.5001));
    CHECK(c.summary.find("FAIL") == 0);
    CHECK(c.summary.find("q=15, d=3") != std::string::npos);

    kernel = reference;
    kernel.o[seen] = NAN;
    c = compare(kernel);
    CHECK_FALSE(c.passed);
    CHECK(c.nan_mismatches == 1);
    kernel = reference;
    kernel.lse[15] = NAN;
    CHECK(compare(kernel).nan_mismatches == 1);

    kernel = reference;
    kernel.lse[15] += 0.1;
    CHECK_FALSE(compare(kernel).passed);
    kernel.lse[15] = -INFINITY;
    CHECK(compare(kernel).max_lse_error == INFINITY);

    kernel = reference;
    kernel.o[2] = 1e-7; // inside the floor, but a row that sees no key must be exactly 0
    c = compare(kernel);
    CHECK_FALSE(c.passed);
    CHECK(c.empty_row_mismatches == 1);
    kernel = reference;
    kernel.lse[0] = 0;
    CHECK(compare(kernel).empty_row_mismatches == 1);

    kernel = reference;
    kernel.o.pop_back();
    CHECK_THROWS_AS(compare(kernel), Error);
  }

  TEST_CASE("sample_rows") {
    const AttentionProblem problem = random_problem(DType::bf16, Mask::none, {3, 50, 50}, 4, 4);
    const int64_t total = 3 * 4 * 50;
    const auto linear = [](const RowId& r) { return (r.batch * 4 + r.head) * 50 + r.query; };
    for (int64_t count : {int64_t{1}, int64_t{3}, int64_t{100}, total * 3 / 4, total - 1}) {
      CAPTURE(count);
      const std::vector<RowId> rows = sample_rows(problem, count, 11);
      CHECK(static_cast<int64_t>(rows.size()) == count);
      std::set<int64_t> distinct;
      bool in_range = true;
      for (const RowId& r : rows) {
        distinct.insert(linear(r));
        in_range &= r.batch >= 0 && r.batch < 3 && r.head >= 0 && r.head < 4 && r.query >= 0 &&
                    r.query < 50;
      }
      CHECK(in_range);
      CHECK(static_cast<int64_t>(distinct.size()) == count);
      CHECK(std::is_sorted(rows.begin(), rows.end(),
                           [&](const RowId& a, const RowId& b) { return linear(a) < linear(b); }));
      if (count >= 4)
        for (int64_t required : {int64_t{0}, int64_t{49}, total - 50, total - 1})
          CHECK(distinct.contains(required));
      const std::vector<RowId> again = sample_rows(problem, count, 11);
      CHECK(std::equal(rows.begin(), rows.end(), again.begin(), again.end(),
                       [&](const RowId& a, const RowId& b) { return linear(a) == linear(b); }));
    }
    CHECK(sample_rows(problem, total + 5, 1).size() == static_cast<size_t>(total));
    CHECK(sample_rows(problem, 0, 1).empty());
  }

  TEST_CASE("reference rows do not depend on which rows are asked for") {
    const HostAttentionData data =
        random_inputs(random_problem(DType::fp16, Mask::causal, {2, 64, 40}, 8, 2, 16), 9);
    const std::vector<RowId> all = all_rows(data.problem);
    const ForwardRows full = reference_forward(data, all);
    const std::vector<RowId> some = sample_rows(data.problem, 37, 4);
    const ForwardRows sampled = reference_forward(data, some);
    const size_t dv = 16;
    int64_t wrong = 0;
    for (size_t r = 0; r < some.size(); ++r) {
      const size_t index = (some[r].batch * 8 + some[r].head) * 64 + some[r].query;
      wrong += !(sampled.lse[r] == full.lse[index]);
      for (size_t d = 0; d < dv; ++d)
        wrong += sampled.o[r * dv + d] != full.o[index * dv + d];
    }
    CHECK(wrong == 0);
  }

} // TEST_SUITE

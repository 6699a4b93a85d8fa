// BackwardPlan on the device against the fp64 reference: our ForwardPlan makes O and LSE, then the
// backward runs on fresh inputs and random dO (the seed is in every failure message;
// ATTNJIT_TEST_SEED replays it), with dQ/dK/dV and the workspace poisoned with NaN first and
// guard bands checked after. Tolerance: 3 x the plain low-precision error + a floor (the issue's
// rule for gradients).
#include "codegen/tile_rules.h"
#include "runtime/driver.h"
#include "tests/gpu_harness.h"
#include "tuner/reference.h"
#include "tuner/reference_backward.h"

#include <attnjit/device.h>
#include <attnjit/error.h>
#include <attnjit/plan.h>
#include <attnjit/spec.h>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <vector>

using namespace attnjit;
using attnjit::test::DoutLayout;
using attnjit::test::needs_gpu;

namespace {

AttentionProblem make_problem(DType dtype, int head_dim, Mask mask, AttentionShape shape,
                              int heads = 2, int kv_heads = 2) {
  AttentionProblem problem;
  problem.spec.pass = Pass::backward;
  problem.spec.dtype = dtype;
  problem.spec.head_dim_qk = problem.spec.head_dim_v = head_dim;
  problem.spec.num_heads = heads;
  problem.spec.num_kv_heads = kv_heads;
  problem.spec.mask = mask;
  problem.shape = shape;
  return problem;
}

// dQ from its own kernel instead of fp32 atomics: every bit the same on every run.
AttentionProblem deterministic(AttentionProblem problem) {
  problem.spec.deterministic = true;
  return problem;
}

AttentionProblem packed_qkv(AttentionProblem problem) {
  problem.spec.layout = Layout::packed_qkv;
  return problem;
}

AttentionProblem mla(AttentionProblem problem, int head_dim_v) {
  problem.spec.head_dim_v = head_dim_v;
  return problem;
}

const char* layout_name(DoutLayout layout) {
  switch (layout) {
  case DoutLayout::contiguous:
    return "contiguous";
  case DoutLayout::padded_seq:
    return "padded seq stride";
  case DoutLayout::heads_outer:
    return "[B, H, S, D]";
  }
  return "?";
}

std::string describe(const AttentionProblem& problem, const std::optional<TileConfig>& config,
                     DoutLayout dout = DoutLayout::contiguous) {
  return fmt::format("{} {} scale {}{}, dO {}", to_string(problem.spec), to_string(problem.shape),
                     effective_softmax_scale(problem),
                     config ? " config " + to_string(*config) : std::string(), layout_name(dout));
}

std::string replay_hint(uint64_t seed) {
  return fmt::format("seed {} (replay with ATTNJIT_TEST_SEED={})", seed, seed);
}

struct Case {
  AttentionProblem problem;
  std::optional<TileConfig> config;
  DoutLayout dout = DoutLayout::contiguous;
  int64_t sample_rows = 0;         // dQ rows to check; 0: every row
  int64_t sample_keys = 0;         // dK/dV rows to check, from at most 2 (batch, KV head); 0: all
  bool may_be_unsupported = false; // Error(unsupported) from a plan is a note, not a failure
  uint64_t seed = 0;               // inputs; 0: a fresh one (test_seed())
  std::string repro;               // a command line that reproduces the case, for failures
};

struct Outcome {
  tuner::BackwardComparison comparison;
  tuner::BackwardRows kernel;
};

std::vector<tuner::RowId> rows_of(const Case& c, uint64_t seed) {
  return c.sample_rows ? tuner::sample_rows(c.problem, c.sample_rows, seed)
                       : tuner::all_rows(c.problem);
}
std::vector<tuner::KeyId> keys_of(const Case& c, uint64_t seed) {
  return c.sample_keys ? tuner::sample_keys(c.problem, c.sample_keys, seed, 2)
                       : tuner::all_keys(c.problem);
}

// For a failed check: which dQ rows and dK/dV keys are off, so the pattern (partial blocks, the
// causal diagonal, one head of a group, ...) shows in the log without a rerun.
std::string failure_pattern(const tuner::BackwardRows& reference, const tuner::BackwardRows& kernel,
                            const tuner::BackwardComparison& c) {
  const auto list = [](const char* name, const std::vector<double>& ref,
                       const std::vector<double>& got, size_t count, double tolerance,
                       const auto& label) {
    const size_t width = count ? ref.size() / count : 0;
    std::string shown;
    int64_t bad = 0;
    for (size_t i = 0; i < count; ++i) {
      double worst = 0;
      bool nan = false;
      for (size_t d = i * width; d < (i + 1) * width; ++d) {
        if (std::isnan(got[d]))
          nan = true;
        else
          worst = std::max(worst, std::abs(got[d] - ref[d]));
      }
      if (!nan && worst <= tolerance) continue;
      if (++bad <= 16)
        shown += fmt::format(" ({}){}", label(i), nan ? " NaN" : fmt::format(" {:.3g}", worst));
    }
    return fmt::format("{}: {} of {} off{}{}", name, bad, count, bad ? ":" : "",
                       shown + (bad > 16 ? " ..." : ""));
  };
  const auto row = [&](size_t i) {
    const tuner::RowId& r = reference.rows[i];
    return fmt::format("b={} h={} q={}", r.batch, r.head, r.query);
  };
  const auto key = [&](size_t i) {
    const tuner::KeyId& k = reference.keys[i];
    return fmt::format("b={} kv={} k={}", k.batch, k.kv_head, k.key);
  };
  return list("dQ rows", reference.dq, kernel.dq, reference.rows.size(), c.dq.tolerance, row) +
         "\n" +
         list("dK keys", reference.dk, kernel.dk, reference.keys.size(), c.dk.tolerance, key) +
         "\n" +
         list("dV keys", reference.dv, kernel.dv, reference.keys.size(), c.dv.tolerance, key);
}

// Forward then backward on the device, both on the legacy default stream.
void run_both(const test::BuiltBackward& plans, test::DeviceBackward& device) {
  plans.forward->run(device.forward.args, nullptr);
  plans.backward->run(device.args, nullptr);
  test::synchronize();
}

// One run on fresh inputs, checked every way this file knows.
Outcome check_run(const test::BuiltBackward& plans, const Case& c) {
  const uint64_t seed = c.seed ? c.seed : test::test_seed();
  INFO(replay_hint(seed));
  const tuner::HostBackwardData data = tuner::random_backward_inputs(c.problem, seed);
  test::DeviceBackward device =
      test::upload_backward(data, plans.backward->workspace_bytes(), c.dout);
  run_both(plans, device);
  const std::vector<tuner::RowId> rows = rows_of(c, seed);
  const std::vector<tuner::KeyId> keys = keys_of(c, seed);
  Outcome outcome;
  outcome.kernel = test::gather_gradients(device, rows, keys);
  const tuner::BackwardRows reference = tuner::reference_backward(data, rows, keys);
  outcome.comparison =
      tuner::compare_backward(reference, tuner::plain_backward(data, rows, keys), outcome.kernel,
                              3.0, tuner::default_backward_abs_floor(c.problem.spec.dtype));
  CHECK_MESSAGE(outcome.comparison.passed, outcome.comparison.summary);
  if (!outcome.comparison.passed)
    MESSAGE(failure_pattern(reference, outcome.kernel, outcome.comparison));
  const std::string guards = test::check_guards(device);
  CHECK_MESSAGE(guards.empty(), guards);
  // Every element, not just the checked ones: a stray NaN in an unsampled row fails too.
  CHECK(test::count_nan_gradients(device) == 0);
  return outcome;
}

// Builds every plan first, on all cores, then checks the cases one by one.
std::vector<Outcome> run_cases(const std::vector<Case>& cases) {
  std::vector<test::PlanRequest> requests;
  for (const Case& c : cases)
    requests.push_back({c.problem, c.config});
  const std::vector<test::BuiltBackward> plans = test::build_backward_plans(requests);
  std::vector<Outcome> outcomes(cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    INFO(describe(cases[i].problem, cases[i].config, cases[i].dout));
    INFO(cases[i].repro);
    try {
      if (plans[i].error) std::rethrow_exception(plans[i].error);
      outcomes[i] = check_run(plans[i], cases[i]);
    } catch (const Error& e) {
      if (cases[i].may_be_unsupported && e.kind() == ErrorKind::unsupported)
        MESSAGE(fmt::format("not supported: {}", e.what()));
      else
        FAIL_CHECK(fmt::format("Error({}): {}", to_string(e.kind()), e.what()));
    } catch (const std::exception& e) {
      FAIL_CHECK(fmt::format("exception: {}", e.what()));
    }
  }
  return outcomes;
}

constexpr DType kDtypes[] = {DType::bf16, DType::fp16};
constexpr Mask kMasks[] = {Mask::none, Mask::causal};

} // namespace

TEST_SUITE("gpu.backward") {

  TEST_CASE("the check fails a backward of another problem" * needs_gpu()) {
    // Gradients for another softmax scale must not pass: the comparison has teeth on the device.
    const AttentionProblem problem = make_problem(DType::bf16, 64, Mask::causal, {1, 127, 127});
    AttentionProblem other = problem;
    other.softmax_scale = 0.3f;
    const std::vector<test::BuiltBackward> plans = test::build_backward_plans({{other, {}}});
    REQUIRE(plans[0].backward);
    const uint64_t seed = test::test_seed();
    INFO(replay_hint(seed));
    const tuner::HostBackwardData data = tuner::random_backward_inputs(problem, seed);
    test::DeviceBackward device = test::upload_backward(data, plans[0].backward->workspace_bytes());
    run_both(plans[0], device);
    const std::vector<tuner::RowId> rows = tuner::all_rows(problem);
    const std::vector<tuner::KeyId> keys = tuner::all_keys(problem);
    const tuner::BackwardComparison comparison = tuner::compare_backward(
        tuner::reference_backward(data, rows, keys), tuner::plain_backward(data, rows, keys),
        test::gather_gradients(device, rows, keys), 3.0,
        tuner::default_backward_abs_floor(DType::bf16));
    CHECK_FALSE(comparison.passed);
    CHECK(comparison.dq.max_abs_error > comparison.dq.tolerance);
    CHECK(comparison.dk.max_abs_error > comparison.dk.tolerance);
  }

  TEST_CASE("Sq == Sk from 1 to 1000" * needs_gpu()) {
    std::vector<Case> cases;
    for (DType dtype : kDtypes)
      for (int d : {64, 128})
        for (int64_t s : {1, 17, 127, 1000})
          for (Mask mask : kMasks)
            cases.push_back({make_problem(dtype, d, mask, {1, s, s})});
    run_cases(cases);
  }

  TEST_CASE("Sq != Sk both ways, seqlen_k = 1, batch > 1" * needs_gpu()) {
    std::vector<Case> cases;
    for (Mask mask : kMasks)
      for (AttentionShape shape :
           {AttentionShape{1, 100, 300}, AttentionShape{1, 300, 100}, AttentionShape{3, 129, 129},
            AttentionShape{2, 65, 190}, AttentionShape{2, 50, 1}, AttentionShape{1, 1, 77}}) {
        cases.push_back({make_problem(DType::bf16, 64, mask, shape)});
        cases.push_back({make_problem(DType::fp16, 128, mask, shape)});
      }
    run_cases(cases);
  }

  TEST_CASE("GQA ratios 1, 2, 4, 8 and MQA" * needs_gpu()) {
    std::vector<Case> cases;
    for (Mask mask : kMasks) {
      for (int kv_heads : {8, 4, 2, 1}) // ratio 1, 2, 4 and 8 (MQA)
        cases.push_back({make_problem(DType::bf16, 128, mask, {2, 200, 200}, 8, kv_heads)});
      // Ratio 8 with two KV heads, and MQA of four heads, at Sq < Sk.
      cases.push_back({make_problem(DType::fp16, 64, mask, {1, 77, 250}, 16, 2)});
      cases.push_back({make_problem(DType::fp16, 64, mask, {1, 77, 250}, 4, 1)});
    }
    run_cases(cases);
  }

  TEST_CASE("packed QKV: dq, dk, dv are slices of one packed gradient" * needs_gpu()) {
    std::vector<Case> cases;
    for (auto [dtype, d, mask] :
         {std::tuple{DType::bf16, 128, Mask::causal}, std::tuple{DType::bf16, 64, Mask::none},
          std::tuple{DType::fp16, 64, Mask::causal}, std::tuple{DType::fp16, 128, Mask::none}}) {
      cases.push_back({packed_qkv(make_problem(dtype, d, mask, {2, 150, 150}, 4, 4))});
    }
    run_cases(cases);
  }

  TEST_CASE("head dims 32, 96 and MLA 192/128" * needs_gpu()) {
    std::vector<Case> cases;
    for (int d : {32, 96}) {
      cases.push_back({make_problem(DType::bf16, d, Mask::none, {2, 127, 127}), std::nullopt,
                       DoutLayout::contiguous, 0, 0, true});
      cases.push_back({make_problem(DType::fp16, d, Mask::causal, {2, 127, 127}), std::nullopt,
                       DoutLayout::contiguous, 0, 0, true});
    }
    // head_dim_qk != head_dim_v: dQ and dK have 192 columns, dV 128.
    for (DType dtype : kDtypes)
      for (Mask mask : kMasks)
        cases.push_back({mla(make_problem(dtype, 192, mask, {2, 127, 127}), 128), std::nullopt,
                         DoutLayout::contiguous, 0, 0, true});
    cases.push_back({mla(make_problem(DType::bf16, 192, Mask::causal, {1, 100, 300}, 8, 2), 128),
                     std::nullopt, DoutLayout::contiguous, 0, 0, true});
    run_cases(cases);
  }

  TEST_CASE("deterministic mode: correct on odd shapes, GQA, packed, MLA" * needs_gpu()) {
    std::vector<Case> cases;
    for (Mask mask : kMasks) {
      cases.push_back({deterministic(make_problem(DType::bf16, 64, mask, {1, 1000, 1000}))});
      cases.push_back({deterministic(make_problem(DType::fp16, 128, mask, {1, 17, 17}))});
      cases.push_back({deterministic(make_problem(DType::bf16, 128, mask, {2, 100, 300}, 8, 2))});
      cases.push_back({deterministic(make_problem(DType::fp16, 64, mask, {1, 300, 100}, 4, 1))});
      cases.push_back({deterministic(make_problem(DType::bf16, 64, mask, {2, 50, 1}))});
      cases.push_back(
          {packed_qkv(deterministic(make_problem(DType::fp16, 128, mask, {2, 150, 150})))});
      cases.push_back({deterministic(mla(make_problem(DType::bf16, 192, mask, {2, 127, 127}), 128)),
                       std::nullopt, DoutLayout::contiguous, 0, 0, true});
      cases.push_back({deterministic(make_problem(DType::bf16, 128, mask, {2, 127, 127})),
                       std::nullopt, DoutLayout::padded_seq});
    }
    run_cases(cases);
  }

  // The Hopper dK/dV kernels (TileConfig::wgmma, all warps loading or one warpgroup loading with
  // TMA): the shapes above, with one and two computing warpgroups.
  TEST_CASE("wgmma dK/dV kernels: odd shapes, GQA, MQA, packed, deterministic, both widths" *
            needs_gpu()) {
    const DeviceInfo device = query_device(0);
    if (device.arch() != "sm_90a") {
      MESSAGE("skipped: the wgmma backward needs sm_90a; device 0 is ", device.name);
      return;
    }
    std::vector<Case> cases;
    for (bool ws : {false, true})
      for (Mask mask : kMasks) {
        const TileConfig one = ws ? TileConfig{64, 64, 8, 2, false, true, true}
                                  : TileConfig{64, 64, 4, 2, false, true};
        const TileConfig two = ws ? TileConfig{64, 128, 12, 2, false, true, true}
                                  : TileConfig{64, 128, 8, 2, false, true};
        for (int64_t s : {1, 17, 127, 1000}) {
          cases.push_back({make_problem(DType::bf16, 128, mask, {1, s, s}), two});
          cases.push_back({make_problem(DType::fp16, 64, mask, {1, s, s}), one});
        }
        for (AttentionShape shape : {AttentionShape{1, 100, 300}, AttentionShape{1, 300, 100},
                                     AttentionShape{3, 129, 129}, AttentionShape{2, 50, 1}}) {
          cases.push_back({make_problem(DType::fp16, 128, mask, shape), two});
          // d128 on one computing warpgroup: the all-loading kernel only (tile_rules).
          cases.push_back({make_problem(DType::bf16, ws ? 64 : 128, mask, shape), one});
        }
        for (int kv_heads : {4, 2, 1})
          cases.push_back({make_problem(DType::bf16, 128, mask, {2, 200, 200}, 8, kv_heads), two});
        cases.push_back({make_problem(DType::fp16, 64, mask, {1, 77, 250}, 16, 2), one});
        cases.push_back(
            {packed_qkv(make_problem(DType::bf16, 128, mask, {2, 150, 150}, 4, 4)), two});
        cases.push_back(
            {deterministic(make_problem(DType::bf16, 128, mask, {2, 100, 300}, 8, 2)), two});
        cases.push_back(
            {deterministic(make_problem(DType::fp16, 64, mask, {1, 300, 100}, 4, 1)), one});
        cases.push_back(
            {make_problem(DType::bf16, 128, mask, {2, 127, 127}), two, DoutLayout::padded_seq});
        AttentionProblem scaled = make_problem(DType::bf16, 128, mask, {1, 127, 127});
        scaled.softmax_scale = 0.3f;
        cases.push_back({scaled, two});
        cases.push_back({make_problem(DType::bf16, 128, mask, {2, 1000, 1000}, 8, 2), two,
                         DoutLayout::contiguous, 256, 128});
        // d64 on two warpgroups: each sums dQ over its own 64 keys (kDqOverOwnKeys).
        for (AttentionShape shape : {AttentionShape{1, 17, 17}, AttentionShape{1, 1000, 1000},
                                     AttentionShape{1, 100, 300}, AttentionShape{3, 300, 100}})
          cases.push_back(
              {make_problem(shape.batch == 1 ? DType::bf16 : DType::fp16, 64, mask, shape), two});
        cases.push_back({make_problem(DType::bf16, 64, mask, {2, 200, 200}, 8, 2), two});
        cases.push_back({make_problem(DType::fp16, 64, mask, {1, 250, 250}, 8, 1), two});
        cases.push_back(
            {packed_qkv(make_problem(DType::bf16, 64, mask, {2, 150, 150}, 4, 4)), two});
        cases.push_back(
            {deterministic(make_problem(DType::bf16, 64, mask, {2, 100, 300}, 8, 2)), two});
      }
    run_cases(cases);
  }

  TEST_CASE("custom softmax scale" * needs_gpu()) {
    std::vector<Case> cases;
    for (float scale : {0.3f, 0.02f})
      for (Mask mask : kMasks) {
        AttentionProblem problem = make_problem(DType::bf16, 64, mask, {1, 127, 127});
        problem.softmax_scale = scale;
        cases.push_back({problem});
        problem = make_problem(DType::fp16, 128, mask, {1, 127, 127});
        problem.softmax_scale = scale;
        cases.push_back({problem});
      }
    run_cases(cases);
  }

  TEST_CASE("dO with non-contiguous strides" * needs_gpu()) {
    // The padding between dO's rows (and the other heads' rows in [B, H, S, D]) holds NaN: a
    // kernel that assumes contiguous dO reads it.
    std::vector<Case> cases;
    for (DoutLayout layout : {DoutLayout::padded_seq, DoutLayout::heads_outer})
      for (Mask mask : kMasks) {
        cases.push_back({make_problem(DType::bf16, 64, mask, {2, 127, 127}), std::nullopt, layout});
        cases.push_back(
            {make_problem(DType::fp16, 128, mask, {2, 127, 127}), std::nullopt, layout});
      }
    cases.push_back({make_problem(DType::bf16, 128, Mask::causal, {2, 200, 200}, 8, 2),
                     std::nullopt, DoutLayout::padded_seq});
    run_cases(cases);
  }

  // dK and dV of Sk = 0 are empty views. As contiguous_bshd (and this harness) make them, their
  // batch stride is Sk * KV * D = 0; PyTorch strides an empty tensor as if Sk were 1. run() must
  // take both: an empty output has no elements that could overlap.
  TEST_CASE("seqlen_k = 0: dQ is exactly 0, never NaN" * needs_gpu()) {
    std::vector<Case> cases;
    for (DType dtype : kDtypes)
      for (int d : {64, 128})
        for (Mask mask : kMasks) {
          cases.push_back({make_problem(dtype, d, mask, {2, 17, 0})});
          cases.push_back({deterministic(make_problem(dtype, d, mask, {2, 17, 0}))});
        }
    // Large enough that the dQ conversion, launched to overlap the pre-pass, would read the
    // NaN-poisoned accumulator if it did not wait for the pre-pass's zeroes.
    cases.push_back({make_problem(DType::bf16, 128, Mask::none, {2, 1000, 0}, 32, 8)});
    const std::vector<Outcome> outcomes = run_cases(cases);
    for (size_t c = 0; c < cases.size(); ++c) {
      INFO(describe(cases[c].problem, std::nullopt));
      const AttentionProblem& p = cases[c].problem;
      CHECK(outcomes[c].kernel.dq.size() ==
            size_t(p.shape.batch * p.shape.seqlen_q * p.spec.num_heads * p.spec.head_dim_qk));
      CHECK(std::all_of(outcomes[c].kernel.dq.begin(), outcomes[c].kernel.dq.end(),
                        [](double x) { return x == 0.0; }));
    }

    // The same with PyTorch's strides for the empty dK and dV.
    std::vector<test::PlanRequest> requests;
    for (const Case& c : cases)
      requests.push_back({c.problem, c.config});
    const std::vector<test::BuiltBackward> plans = test::build_backward_plans(requests);
    for (size_t c = 0; c < cases.size(); ++c) {
      const AttentionProblem& problem = cases[c].problem;
      INFO(fmt::format("{}, dK/dV batch stride KV * D", describe(problem, std::nullopt)));
      try {
        if (plans[c].error) std::rethrow_exception(plans[c].error);
        const uint64_t seed = test::test_seed();
        INFO(replay_hint(seed));
        test::DeviceBackward device = test::upload_backward(
            tuner::random_backward_inputs(problem, seed), plans[c].backward->workspace_bytes());
        device.args.dk.batch_stride = problem.spec.num_kv_heads * problem.spec.head_dim_qk;
        device.args.dv.batch_stride = problem.spec.num_kv_heads * problem.spec.head_dim_v;
        run_both(plans[c], device);
        const tuner::BackwardRows kernel =
            test::gather_gradients(device, tuner::all_rows(problem), {});
        CHECK(std::all_of(kernel.dq.begin(), kernel.dq.end(), [](double x) { return x == 0.0; }));
        CHECK(test::count_nan_gradients(device) == 0);
        const std::string guards = test::check_guards(device);
        CHECK_MESSAGE(guards.empty(), guards);
      } catch (const std::exception& e) {
        FAIL_CHECK(fmt::format("exception: {}", e.what()));
      }
    }
  }

  TEST_CASE("causal with Sq > Sk: rows that see no key get dQ exactly 0" * needs_gpu()) {
    std::vector<Case> cases;
    for (DType dtype : kDtypes)
      for (AttentionShape shape : {AttentionShape{1, 300, 100}, AttentionShape{2, 130, 1}}) {
        cases.push_back({make_problem(dtype, 64, Mask::causal, shape)});
        cases.push_back({make_problem(dtype, 128, Mask::causal, shape, 8, 2)});
        cases.push_back({deterministic(make_problem(dtype, 64, Mask::causal, shape))});
      }
    const std::vector<Outcome> outcomes = run_cases(cases);
    for (size_t c = 0; c < cases.size(); ++c) {
      const AttentionShape& shape = cases[c].problem.shape;
      const tuner::BackwardRows& kernel = outcomes[c].kernel;
      const size_t d = cases[c].problem.spec.head_dim_qk;
      int64_t empty = 0, bad = 0;
      for (size_t r = 0; r < kernel.rows.size(); ++r) {
        if (kernel.rows[r].query >= shape.seqlen_q - shape.seqlen_k) continue;
        ++empty;
        for (size_t i = 0; i < d; ++i)
          bad += kernel.dq[r * d + i] != 0.0;
      }
      CHECK_MESSAGE(bad == 0, describe(cases[c].problem, std::nullopt));
      CHECK(empty > 0);
    }
  }

  TEST_CASE("a larger problem, sampled rows and keys" * needs_gpu()) {
    // The CPU reference of every row would take long; sampled dQ rows, and dK/dV keys of two
    // (batch, KV head) pairs, keep it to a second or so.
    std::vector<Case> cases;
    cases.push_back({make_problem(DType::bf16, 128, Mask::causal, {4, 1000, 1000}, 8, 2),
                     std::nullopt, DoutLayout::contiguous, 256, 128});
    cases.push_back({make_problem(DType::fp16, 64, Mask::none, {3, 777, 1025}, 4, 4), std::nullopt,
                     DoutLayout::contiguous, 256, 128});
    // Causal, 45 (batch, head) groups walked in chunks of 21 (3 MiB of Q, dO and dQ rows each):
    // the last chunk holds three groups.
    cases.push_back({make_problem(DType::bf16, 128, Mask::causal, {3, 3000, 3000}, 15, 15),
                     std::nullopt, DoutLayout::contiguous, 256, 128});
    run_cases(cases);
  }

  TEST_CASE("a non-default stream; dK/dV bit-identical on reruns, dQ within tolerance" *
            needs_gpu()) {
    const AttentionProblem problem =
        make_problem(DType::bf16, 128, Mask::causal, {2, 257, 257}, 8, 2);
    const std::vector<test::BuiltBackward> plans = test::build_backward_plans({{problem, {}}});
    if (plans[0].error) std::rethrow_exception(plans[0].error);
    const uint64_t seed = test::test_seed();
    INFO(replay_hint(seed));
    const tuner::HostBackwardData data = tuner::random_backward_inputs(problem, seed);
    test::DeviceBackward device = test::upload_backward(data, plans[0].backward->workspace_bytes());
    const std::vector<tuner::RowId> rows = tuner::all_rows(problem);
    const std::vector<tuner::KeyId> keys = tuner::all_keys(problem);
    const tuner::BackwardRows reference = tuner::reference_backward(data, rows, keys);
    const tuner::BackwardRows plain = tuner::plain_backward(data, rows, keys);

    CUstream stream = nullptr;
    ATTNJIT_CU(cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
    plans[0].forward->run(device.forward.args, stream);
    std::vector<test::GradientBits> results;
    for (int run = 0; run < 3; ++run) {
      test::poison_gradients(device);
      plans[0].backward->run(device.args, stream);
      ATTNJIT_CU(cuStreamSynchronize(stream));
      results.push_back(test::download_gradients(device));
      const tuner::BackwardComparison comparison =
          tuner::compare_backward(reference, plain, test::gather_gradients(device, rows, keys), 3.0,
                                  tuner::default_backward_abs_floor(problem.spec.dtype));
      CHECK_MESSAGE(comparison.passed, fmt::format("run {}: {}", run, comparison.summary));
    }
    ATTNJIT_CU(cuStreamDestroy(stream));
    for (int run = 1; run < 3; ++run) {
      CHECK(results[run].dk == results[0].dk);
      CHECK(results[run].dv == results[0].dv);
      const auto differ = std::inner_product(
          results[run].dq.begin(), results[run].dq.end(), results[0].dq.begin(), int64_t{0},
          std::plus<>(), [](uint16_t a, uint16_t b) { return int64_t{a != b}; });
      MESSAGE(fmt::format("run {}: {} of {} dQ values differ from run 0 in their bits (fp32 "
                          "atomics add in varying order)",
                          run, differ, results[run].dq.size()));
    }
    CHECK(test::count_nan_gradients(device) == 0);
    const std::string guards = test::check_guards(device);
    CHECK_MESSAGE(guards.empty(), guards);
  }

  TEST_CASE("deterministic mode: every bit the same over 50 reruns at batch 16" * needs_gpu()) {
    const AttentionProblem problem =
        deterministic(make_problem(DType::bf16, 128, Mask::causal, {16, 257, 257}, 8, 2));
    const std::vector<test::BuiltBackward> plans = test::build_backward_plans({{problem, {}}});
    if (plans[0].error) std::rethrow_exception(plans[0].error);
    const uint64_t seed = test::test_seed();
    INFO(replay_hint(seed));
    const tuner::HostBackwardData data = tuner::random_backward_inputs(problem, seed);
    test::DeviceBackward device = test::upload_backward(data, plans[0].backward->workspace_bytes());
    plans[0].forward->run(device.forward.args, nullptr);
    std::optional<test::GradientBits> first;
    int64_t differing_runs = 0;
    for (int run = 0; run < 50; ++run) {
      test::poison_gradients(device);
      plans[0].backward->run(device.args, nullptr);
      test::synchronize();
      test::GradientBits bits = test::download_gradients(device);
      if (!first) {
        const std::vector<tuner::RowId> rows = tuner::sample_rows(problem, 512, seed);
        const std::vector<tuner::KeyId> keys = tuner::sample_keys(problem, 256, seed, 2);
        const tuner::BackwardComparison comparison = tuner::compare_backward(
            tuner::reference_backward(data, rows, keys), tuner::plain_backward(data, rows, keys),
            test::gather_gradients(device, rows, keys), 3.0,
            tuner::default_backward_abs_floor(problem.spec.dtype));
        CHECK_MESSAGE(comparison.passed, comparison.summary);
        CHECK(test::count_nan_gradients(device) == 0);
        first = std::move(bits);
      } else {
        differing_runs += bits.dq != first->dq || bits.dk != first->dk || bits.dv != first->dv;
      }
    }
    CHECK(differing_runs == 0);
    const std::string guards = test::check_guards(device);
    CHECK_MESSAGE(guards.empty(), guards);
  }

  TEST_CASE("every candidate config on an odd shape" * needs_gpu()) {
    const codegen::ArchLimits limits = codegen::arch_limits(query_device(0).arch());
    std::vector<test::PlanRequest> requests;
    std::vector<AttentionProblem> problems;
    // Sq != Sk, neither a multiple of any block, GQA: partial blocks on both sides, the causal
    // diagonal off the block grid, and the group walk, for every tiling.
    for (auto [dtype, d, mask, det] : {std::tuple{DType::bf16, 64, Mask::none, false},
                                       std::tuple{DType::bf16, 128, Mask::causal, false},
                                       std::tuple{DType::fp16, 64, Mask::causal, false},
                                       std::tuple{DType::fp16, 128, Mask::none, false},
                                       std::tuple{DType::bf16, 128, Mask::causal, true}}) {
      AttentionProblem problem = make_problem(dtype, d, mask, {2, 157, 263}, 4, 2);
      problem.spec.deterministic = det;
      const std::vector<TileConfig> configs = codegen::candidates(problem.spec, limits);
      CHECK_MESSAGE(!configs.empty(), to_string(problem.spec));
      problems.push_back(problem);
      for (const TileConfig& config : configs)
        requests.push_back({problem, config});
    }
    const std::vector<test::BuiltBackward> plans = test::build_backward_plans(requests);

    // One set of inputs and one reference per problem; each config runs on poisoned gradients.
    size_t next = 0;
    for (const AttentionProblem& problem : problems) {
      const uint64_t seed = test::test_seed();
      INFO(replay_hint(seed));
      const tuner::HostBackwardData data = tuner::random_backward_inputs(problem, seed);
      const std::vector<tuner::RowId> rows = tuner::all_rows(problem);
      const std::vector<tuner::KeyId> keys = tuner::all_keys(problem);
      const tuner::BackwardRows reference = tuner::reference_backward(data, rows, keys);
      const tuner::BackwardRows plain = tuner::plain_backward(data, rows, keys);
      std::optional<test::DeviceBackward> device;
      for (; next < requests.size() && requests[next].problem == problem; ++next) {
        INFO(describe(problem, requests[next].config));
        try {
          if (plans[next].error) std::rethrow_exception(plans[next].error);
          // Workspace sizes may differ between configs (never in practice): upload per need.
          if (!device || device->workspace.size() < plans[next].backward->workspace_bytes())
            device = test::upload_backward(data, plans[next].backward->workspace_bytes());
          test::poison_gradients(*device);
          run_both(plans[next], *device);
          const tuner::BackwardRows kernel = test::gather_gradients(*device, rows, keys);
          const tuner::BackwardComparison comparison = tuner::compare_backward(
              reference, plain, kernel, 3.0, tuner::default_backward_abs_floor(problem.spec.dtype));
          CHECK_MESSAGE(comparison.passed, comparison.summary);
          if (!comparison.passed) MESSAGE(failure_pattern(reference, kernel, comparison));
          CHECK(test::count_nan_gradients(*device) == 0);
          const std::string guards = test::check_guards(*device);
          CHECK_MESSAGE(guards.empty(), guards);
        } catch (const std::exception& e) {
          FAIL_CHECK(fmt::format("candidate config failed: {}", e.what()));
        }
      }
    }
  }

  // Last in the file: a launch that should have been refused can leave the context unusable.
  TEST_CASE("run() refuses a bad workspace and overlapping gradients" * needs_gpu()) {
    const AttentionProblem problem = make_problem(DType::bf16, 64, Mask::none, {2, 64, 64}, 4, 2);
    AttentionProblem forward_problem = problem;
    forward_problem.spec.pass = Pass::forward;
    try {
      BackwardPlan wrong_pass(forward_problem);
      FAIL_CHECK("BackwardPlan accepted a forward spec");
    } catch (const Error& e) {
      CHECK_MESSAGE(e.kind() == ErrorKind::invalid_argument, std::string(e.what()));
    }

    const std::vector<test::BuiltBackward> plans = test::build_backward_plans({{problem, {}}});
    if (plans[0].error) std::rethrow_exception(plans[0].error);
    const BackwardPlan& plan = *plans[0].backward;
    // D ([B, H, Sq] fp32) and the fp32 dQ accumulator ([B, H, Sq, Dqk]) at least.
    CHECK(plan.workspace_bytes() >= size_t(2 * 4 * 64 * (64 + 1) * 4));
    const uint64_t seed = test::test_seed();
    INFO(replay_hint(seed));
    const tuner::HostBackwardData data = tuner::random_backward_inputs(problem, seed);
    test::DeviceBackward device = test::upload_backward(data, plan.workspace_bytes());

    // The arguments work as given, so every refusal below is about the one thing changed.
    run_both(plans[0], device);
    const std::vector<tuner::RowId> rows = tuner::all_rows(problem);
    const std::vector<tuner::KeyId> keys = tuner::all_keys(problem);
    const tuner::BackwardComparison comparison = tuner::compare_backward(
        tuner::reference_backward(data, rows, keys), tuner::plain_backward(data, rows, keys),
        test::gather_gradients(device, rows, keys), 3.0,
        tuner::default_backward_abs_floor(DType::bf16));
    REQUIRE_MESSAGE(comparison.passed, comparison.summary);

    const BackwardArgs good = device.args;
    const auto shifted = [](const void* p, int64_t bytes) {
      return static_cast<const void*>(static_cast<const char*>(p) + bytes);
    };
    const auto refused = [&](const char* what, auto&& change) {
      BackwardArgs args = good;
      change(args);
      INFO(std::string(what));
      try {
        plan.run(args, nullptr);
        FAIL_CHECK(fmt::format("run() accepted {}", what));
      } catch (const Error& e) {
        CHECK_MESSAGE(e.kind() == ErrorKind::invalid_argument, std::string(e.what()));
      }
    };
    refused("null workspace", [](BackwardArgs& a) { a.workspace = nullptr; });
    refused("a workspace one byte too small", [](BackwardArgs& a) { a.workspace_bytes -= 1; });
    refused("workspace_bytes 0", [](BackwardArgs& a) { a.workspace_bytes = 0; });
    refused("a workspace off 16-byte alignment",
            [&](BackwardArgs& a) { a.workspace = const_cast<void*>(shifted(a.workspace, 4)); });
    refused("dq over q", [](BackwardArgs& a) { a.dq.data = a.q.data; });
    refused("dk over k", [](BackwardArgs& a) { a.dk.data = a.k.data; });
    refused("dv over dout", [](BackwardArgs& a) { a.dv.data = a.dout.data; });
    refused("dq over dk", [](BackwardArgs& a) { a.dq.data = a.dk.data; });
    refused("dq inside the workspace", [](BackwardArgs& a) { a.dq.data = a.workspace; });
    refused("workspace over lse", [](BackwardArgs& a) { a.workspace = const_cast<float*>(a.lse); });
    refused("null dout", [](BackwardArgs& a) { a.dout.data = nullptr; });
    refused("null lse", [](BackwardArgs& a) { a.lse = nullptr; });
    refused("null o", [](BackwardArgs& a) { a.o.data = nullptr; });
    refused("dout off by one element",
            [&](BackwardArgs& a) { a.dout.data = shifted(a.dout.data, 2); });
    refused("dq seq_stride not a multiple of 8", [](BackwardArgs& a) { a.dq.seq_stride += 1; });
    refused("dq rows overlapping each other", [](BackwardArgs& a) { a.dq.seq_stride = 8; });

    test::synchronize();
    const std::string guards = test::check_guards(device);
    CHECK_MESSAGE(guards.empty(), guards);
  }

  // Issue 3's random sweep: fresh shapes every run (the seed is printed), each failure with the
  // command line that reruns it through the CLI. Small sizes keep the fp64 reference quick.
  TEST_CASE("random sweep of 128 shapes, forward then backward" * needs_gpu()) {
    const uint64_t sweep_seed = test::test_seed();
    MESSAGE(fmt::format("sweep seed {} (ATTNJIT_TEST_SEED={} repeats the shapes)", sweep_seed,
                        sweep_seed));
    std::mt19937_64 rng(sweep_seed);
    const std::pair<int, int> dims[] = {{32, 32}, {64, 64}, {96, 96}, {128, 128}, {192, 128}};
    const int heads[] = {1, 2, 4, 8};
    std::vector<Case> cases;
    for (int i = 0; i < 128; ++i) {
      const auto [dqk, dv] = dims[rng() % 5];
      const int h = heads[rng() % 4];
      int kv = h;
      while (rng() % 2 && kv > 1)
        kv /= 2; // GQA ratios 1..8, MQA
      const bool packed = kv == h && dqk == dv && rng() % 4 == 0;
      const int64_t sq = 1 + rng() % 300, sk = packed ? sq : int64_t(rng() % 301);
      AttentionProblem p = make_problem(rng() % 2 ? DType::bf16 : DType::fp16, dqk,
                                        rng() % 2 ? Mask::causal : Mask::none,
                                        {int64_t(1 + rng() % 3), sq, sk}, h, kv);
      p.spec.head_dim_v = dv;
      p.spec.layout = packed ? Layout::packed_qkv : Layout::separate;
      p.spec.deterministic = rng() % 4 == 0;
      Case c{p};
      c.sample_rows = 64, c.sample_keys = 32;
      c.seed = rng() | 1;
      c.repro = fmt::format(
          "repro: attnjit run --pass=bwd --dtype={} --batch={} --seqlen-q={} --seqlen-k={} "
          "--heads={} --kv-heads={} --head-dim={} --head-dim-v={}{}{}{} --seed={}",
          to_string(p.spec.dtype), p.shape.batch, sq, sk, h, kv, dqk, dv,
          p.spec.mask == Mask::causal ? " --causal" : "", packed ? " --layout=packed" : "",
          p.spec.deterministic ? " --deterministic" : "", c.seed);
      cases.push_back(c);
    }
    run_cases(cases);
  }
} // TEST_SUITE

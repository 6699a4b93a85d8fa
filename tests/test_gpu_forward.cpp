// ForwardPlan on the device against the fp64 reference: fresh inputs each run (the seed is in every
// failure message; ATTNJIT_TEST_SEED replays it), outputs poisoned with NaN first, guard bands
// checked after, tolerance 2 x the plain low-precision error + a floor (FlashAttention's rule).
#include "codegen/forward_launch.h"
#include "codegen/tile_rules.h"
#include "runtime/driver.h"
#include "tests/forward_cases.h"
#include "tests/gpu_harness.h"
#include "tuner/reference.h"

#include <attnjit/device.h>
#include <attnjit/error.h>
#include <attnjit/plan.h>
#include <attnjit/spec.h>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

using namespace attnjit;
using attnjit::test::Case;
using attnjit::test::describe;
using attnjit::test::needs_gpu;
using attnjit::test::Outcome;
using attnjit::test::replay_hint;
using attnjit::test::run_cases;

namespace {

AttentionProblem make_problem(DType dtype, int head_dim, Mask mask, AttentionShape shape,
                              int heads = 4, int kv_heads = 4) {
  AttentionProblem problem;
  problem.spec.dtype = dtype;
  problem.spec.head_dim_qk = problem.spec.head_dim_v = head_dim;
  problem.spec.num_heads = heads;
  problem.spec.num_kv_heads = kv_heads;
  problem.spec.mask = mask;
  problem.shape = shape;
  return problem;
}

constexpr DType kDtypes[] = {DType::bf16, DType::fp16};
constexpr Mask kMasks[] = {Mask::none, Mask::causal};

} // namespace

TEST_SUITE("gpu.forward") {

  TEST_CASE("the harness catches stray writes and wrong results" * needs_gpu()) {
    // 501 bf16 words: the payload ends half-way through a 32-bit word.
    test::GuardedBuffer buffer(1002);
    CHECK(buffer.check_guards().empty());
    const std::vector<uint16_t> ones(501, 0x3f80);
    buffer.upload(ones.data(), 1002);
    CHECK(buffer.check_guards().empty());
    buffer.poison();
    std::vector<uint16_t> back(501);
    buffer.download(back.data(), 1002);
    CHECK(std::all_of(back.begin(), back.end(), [](uint16_t x) { return x == 0x7fc0; }));
    const CUdeviceptr payload = reinterpret_cast<CUdeviceptr>(buffer.data());
    const uint16_t one = 0x3f80;
    ATTNJIT_CU(cuMemcpyHtoD(payload + 1002, &one, 2)); // one element past the end
    CHECK(buffer.check_guards().rfind("back guard", 0) == 0);
    test::GuardedBuffer before(64);
    ATTNJIT_CU(cuMemcpyHtoD(reinterpret_cast<CUdeviceptr>(before.data()) - 2, &one, 2));
    CHECK(before.check_guards().rfind("front guard", 0) == 0);

    // A kernel that computes something else (another softmax scale) must fail the check.
    const AttentionProblem problem = make_problem(DType::bf16, 64, Mask::none, {1, 127, 127});
    AttentionProblem other = problem;
    other.softmax_scale = 0.3f;
    const ForwardPlan plan(other);
    const tuner::HostAttentionData data = tuner::random_inputs(problem, test::test_seed());
    test::DeviceAttention device = test::upload(data);
    plan.run(device.args, nullptr);
    test::synchronize();
    const std::vector<tuner::RowId> rows = tuner::all_rows(problem);
    const tuner::Comparison comparison = tuner::compare_forward(
        tuner::reference_forward(data, rows), tuner::plain_forward(data, rows),
        test::gather(device, rows), 2.0, tuner::default_abs_floor(DType::bf16));
    CHECK_FALSE(comparison.passed);
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

  TEST_CASE("Sq != Sk both ways, batch > 1" * needs_gpu()) {
    std::vector<Case> cases;
    for (Mask mask : kMasks) {
      for (AttentionShape shape : {AttentionShape{1, 100, 300}, AttentionShape{1, 300, 100},
                                   AttentionShape{3, 129, 129}, AttentionShape{2, 65, 190}}) {
        cases.push_back({make_problem(DType::bf16, 64, mask, shape)});
        cases.push_back({make_problem(DType::fp16, 128, mask, shape)});
      }
    }
    run_cases(cases);
  }

  TEST_CASE("GQA and MQA" * needs_gpu()) {
    std::vector<Case> cases;
    for (int kv_heads : {2, 1})
      for (Mask mask : kMasks) {
        cases.push_back({make_problem(DType::bf16, 128, mask, {2, 200, 200}, 8, kv_heads)});
        cases.push_back({make_problem(DType::fp16, 64, mask, {1, 77, 250}, 8, kv_heads)});
      }
    run_cases(cases);
  }

  TEST_CASE("packed QKV" * needs_gpu()) {
    std::vector<Case> cases;
    for (DType dtype : kDtypes)
      for (int d : {64, 128})
        for (Mask mask : kMasks) {
          AttentionProblem problem = make_problem(dtype, d, mask, {2, 150, 150});
          problem.spec.layout = Layout::packed_qkv;
          cases.push_back({problem});
        }
    run_cases(cases);
  }

  TEST_CASE("head dims 32, 96, 256 and MLA 192/128" * needs_gpu()) {
    std::vector<Case> cases;
    for (DType dtype : kDtypes)
      for (int d : {32, 96, 256, 192})
        for (Mask mask : kMasks) {
          AttentionProblem problem = make_problem(dtype, d, mask, {2, 127, 127});
          if (d == 192) problem.spec.head_dim_v = 128;
          // MLA's head dims are not supported yet: Error(unsupported) is reported, not failed.
          cases.push_back({problem, std::nullopt, 0, d == 192});
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

  TEST_CASE("seqlen_k = 0 gives O = 0 and LSE = -inf" * needs_gpu()) {
    std::vector<Case> cases;
    for (DType dtype : kDtypes)
      for (int d : {64, 128})
        for (Mask mask : kMasks)
          cases.push_back({make_problem(dtype, d, mask, {2, 17, 0})});
    for (const Outcome& outcome : run_cases(cases)) {
      for (double o : outcome.kernel.o)
        CHECK(o == 0.0);
      for (double lse : outcome.kernel.lse)
        CHECK(lse == -INFINITY);
    }
  }

  TEST_CASE("causal with Sq > Sk: rows that see no key are 0, never NaN" * needs_gpu()) {
    std::vector<Case> cases;
    for (DType dtype : kDtypes)
      for (AttentionShape shape : {AttentionShape{1, 300, 100}, AttentionShape{2, 130, 1}})
        cases.push_back({make_problem(dtype, 64, Mask::causal, shape)});
    const std::vector<Outcome> outcomes = run_cases(cases);
    for (size_t c = 0; c < cases.size(); ++c) {
      const AttentionShape& shape = cases[c].problem.shape;
      const tuner::ForwardRows& kernel = outcomes[c].kernel;
      const size_t dv = cases[c].problem.spec.head_dim_v;
      int64_t bad = 0;
      for (size_t r = 0; r < kernel.rows.size(); ++r) {
        if (kernel.rows[r].query >= shape.seqlen_q - shape.seqlen_k) continue;
        bad += kernel.lse[r] != -INFINITY;
        for (size_t d = 0; d < dv; ++d)
          bad += kernel.o[r * dv + d] != 0.0;
      }
      CHECK_MESSAGE(bad == 0, describe(cases[c].problem, std::nullopt));
    }
  }

  TEST_CASE("causal tiles in groups of heads of unequal size" * needs_gpu()) {
    // K/V long enough that a quarter of the L2 holds only a few heads' worth: the grid walks
    // causal_head_groups groups of (b, h) pairs, longest rows first within each, the first
    // groups one pair larger; a tile mapped twice or never shows as a wrong or NaN row. Every
    // row is checked.
    const long long l2 = query_device(0).l2_bytes;
    std::vector<Case> cases;
    for (DType dtype : kDtypes) {
      cases.push_back({make_problem(dtype, 128, Mask::causal, {2, 300, 8192}, 7, 7)});
      cases.push_back({make_problem(dtype, 128, Mask::causal, {1, 200, 16384}, 10, 5)});
      cases.push_back({make_problem(dtype, 64, Mask::causal, {3, 150, 24000}, 5, 5)});
    }
    for (const Case& c : cases) {
      const int groups = codegen::causal_head_groups(c.problem, l2);
      const int64_t pairs = c.problem.shape.batch * c.problem.spec.num_heads;
      INFO(describe(c.problem, std::nullopt), ": ", groups, " groups of ", pairs, " pairs");
      CHECK(groups >= 1);
      CHECK(groups <= pairs);
      if (groups == 1 || pairs % groups == 0)
        MESSAGE("this GPU's L2 (", l2, " B) gives groups of one size here");
    }
    run_cases(cases);
    for (Case& c : cases) // the mma.sync kernel walks them the same way
      c.config = TileConfig{128, 64, 4, 2, false};
    run_cases(cases);
  }

  TEST_CASE("batch * heads > 65535 and batch > 65535" * needs_gpu()) {
    // Grid dimensions y and z stop at 65535; sampled rows keep the CPU reference cheap.
    run_cases(
        {{make_problem(DType::bf16, 64, Mask::none, {1100, 17, 17}, 64, 64), std::nullopt, 512},
         {make_problem(DType::bf16, 64, Mask::causal, {66000, 3, 3}, 1, 1), std::nullopt, 512}});
  }

  TEST_CASE("a non-default stream; repeated runs are bit-identical" * needs_gpu()) {
    const AttentionProblem problem = make_problem(DType::bf16, 128, Mask::causal, {2, 257, 257});
    const ForwardPlan plan(problem);
    const uint64_t seed = test::test_seed();
    INFO(replay_hint(seed));
    test::DeviceAttention device = test::upload(tuner::random_inputs(problem, seed));
    CUstream stream = nullptr;
    ATTNJIT_CU(cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
    std::vector<std::vector<uint16_t>> results;
    for (int run = 0; run < 2; ++run) {
      test::poison_outputs(device);
      plan.run(device.args, stream);
      ATTNJIT_CU(cuStreamSynchronize(stream));
      std::vector<uint16_t>& o = results.emplace_back(device.o.size() / 2);
      device.o.download(o.data(), device.o.size());
    }
    ATTNJIT_CU(cuStreamDestroy(stream));
    CHECK(results[0] == results[1]);
    CHECK(test::count_nan_outputs(device) == 0);
  }

  TEST_CASE("every candidate config on an odd shape" * needs_gpu()) {
    const codegen::ArchLimits limits = codegen::arch_limits(query_device(0).arch());
    std::vector<test::PlanRequest> requests;
    std::vector<AttentionProblem> problems;
    for (DType dtype : kDtypes)
      for (int d : {64, 128})
        for (Mask mask : kMasks) {
          const AttentionProblem problem = make_problem(dtype, d, mask, {2, 257, 257});
          const std::vector<TileConfig> configs = codegen::candidates(problem.spec, limits);
          CHECK_MESSAGE(!configs.empty(), to_string(problem.spec));
          problems.push_back(problem);
          for (const TileConfig& config : configs)
            requests.push_back({problem, config});
        }
    const std::vector<test::BuiltPlan> plans = test::build_plans(requests);

    // One set of inputs and one reference per problem; each config runs on poisoned outputs.
    size_t next = 0;
    for (const AttentionProblem& problem : problems) {
      const uint64_t seed = test::test_seed();
      INFO(replay_hint(seed));
      const tuner::HostAttentionData data = tuner::random_inputs(problem, seed);
      const std::vector<tuner::RowId> rows = tuner::all_rows(problem);
      const tuner::ForwardRows reference = tuner::reference_forward(data, rows);
      const tuner::ForwardRows plain = tuner::plain_forward(data, rows);
      test::DeviceAttention device = test::upload(data);
      for (; next < requests.size() && requests[next].problem == problem; ++next) {
        INFO(describe(problem, requests[next].config));
        try {
          if (plans[next].error) std::rethrow_exception(plans[next].error);
          test::poison_outputs(device);
          plans[next].plan->run(device.args, nullptr);
          test::synchronize();
          const tuner::Comparison comparison =
              tuner::compare_forward(reference, plain, test::gather(device, rows), 2.0,
                                     tuner::default_abs_floor(problem.spec.dtype));
          CHECK_MESSAGE(comparison.passed, comparison.summary);
          const std::string guards = test::check_guards(device);
          CHECK_MESSAGE(guards.empty(), guards);
        } catch (const std::exception& e) {
          FAIL_CHECK(fmt::format("candidate config failed: {}", e.what()));
        }
      }
    }
  }

  // Last in the file: a launch that should have been refused can leave the context unusable.
  TEST_CASE("run() refuses null, misaligned and overlapping arguments" * needs_gpu()) {
    const AttentionProblem problem = make_problem(DType::bf16, 64, Mask::none, {2, 64, 64});
    const ForwardPlan plan(problem);
    const uint64_t seed = test::test_seed();
    INFO(replay_hint(seed));
    const tuner::HostAttentionData data = tuner::random_inputs(problem, seed);
    test::DeviceAttention device = test::upload(data);
    const ForwardArgs good = device.args;

    // The arguments work as given, so every refusal below is about the one thing changed.
    plan.run(good, nullptr);
    test::synchronize();
    const std::vector<tuner::RowId> rows = tuner::all_rows(problem);
    const tuner::Comparison comparison = tuner::compare_forward(
        tuner::reference_forward(data, rows), tuner::plain_forward(data, rows),
        test::gather(device, rows), 2.0, tuner::default_abs_floor(DType::bf16));
    REQUIRE_MESSAGE(comparison.passed, comparison.summary);

    const auto shifted = [](const void* p, int64_t bytes) {
      return static_cast<const void*>(static_cast<const char*>(p) + bytes);
    };
    const auto as_lse = [](const void* p) {
      return const_cast<float*>(static_cast<const float*>(p));
    };
    const auto refused = [&](const char* what, auto&& change) {
      ForwardArgs args = good;
      change(args);
      INFO(std::string(what));
      try {
        plan.run(args, nullptr);
        FAIL_CHECK(fmt::format("run() accepted {}", what));
      } catch (const Error& e) {
        CHECK_MESSAGE(e.kind() == ErrorKind::invalid_argument, std::string(e.what()));
      }
    };
    refused("null q", [](ForwardArgs& a) { a.q.data = nullptr; });
    refused("null k", [](ForwardArgs& a) { a.k.data = nullptr; });
    refused("null v", [](ForwardArgs& a) { a.v.data = nullptr; });
    refused("null o", [](ForwardArgs& a) { a.o.data = nullptr; });
    refused("null lse", [](ForwardArgs& a) { a.lse = nullptr; });
    refused("q off by one element", [&](ForwardArgs& a) { a.q.data = shifted(a.q.data, 2); });
    refused("k off by one element", [&](ForwardArgs& a) { a.k.data = shifted(a.k.data, 2); });
    refused("v off by one element", [&](ForwardArgs& a) { a.v.data = shifted(a.v.data, 2); });
    refused("o off by one element", [&](ForwardArgs& a) { a.o.data = shifted(a.o.data, 2); });
    refused("lse off by two bytes", [&](ForwardArgs& a) { a.lse = as_lse(shifted(a.lse, 2)); });
    refused("o over q", [](ForwardArgs& a) { a.o.data = a.q.data; });
    refused("o over the second half of k",
            [&](ForwardArgs& a) { a.o.data = shifted(a.k.data, device.inputs[1].size() / 2); });
    refused("lse inside o", [&](ForwardArgs& a) { a.lse = as_lse(shifted(a.o.data, 256)); });
    refused("lse over v", [&](ForwardArgs& a) { a.lse = as_lse(a.v.data); });
    // Every row start must stay 16-byte aligned, not just the base pointer.
    refused("q seq_stride not a multiple of 8", [](ForwardArgs& a) { a.q.seq_stride += 1; });

    test::synchronize();
    const std::string guards = test::check_guards(device);
    CHECK_MESSAGE(guards.empty(), guards);
  }

} // TEST_SUITE

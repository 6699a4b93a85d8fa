// The wide-Dv forward (flash_fwd_wide_kernel) on the device: absorbed MLA, head dims 576/512, one
// KV head shared by 16 or 128 query heads, V read from K (Layout::v_in_k: no V buffer is even
// uploaded) or, less often, a V tensor of its own. Checked as every forward is (forward_cases.h):
// fp64 reference, 2 x the plain low-precision error + a floor, NaN-poisoned outputs, guard bands.
#include "codegen/tile_rules.h"
#include "tests/forward_cases.h"
#include "tests/gpu_harness.h"
#include "tuner/reference.h"

#include <attnjit/device.h>
#include <attnjit/error.h>
#include <attnjit/plan.h>
#include <attnjit/spec.h>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cmath>
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

AttentionProblem absorbed_mla(DType dtype, Mask mask, AttentionShape shape, int heads,
                              Layout layout = Layout::v_in_k, int kv_heads = 1) {
  AttentionProblem problem;
  problem.spec.dtype = dtype;
  problem.spec.head_dim_qk = 576;
  problem.spec.head_dim_v = 512;
  problem.spec.num_heads = heads;
  problem.spec.num_kv_heads = kv_heads;
  problem.spec.layout = layout;
  problem.spec.mask = mask;
  problem.shape = shape;
  return problem;
}

// Rows checked against the references per case; all rows are still checked for NaN.
constexpr int64_t kSampledRows = 512;
constexpr DType kDtypes[] = {DType::bf16, DType::fp16};
constexpr Mask kMasks[] = {Mask::none, Mask::causal};

} // namespace

TEST_SUITE("gpu.forward_wide") {

  TEST_CASE("absorbed MLA 576/512, V from K: decode to prefill lengths, 16 and 128 heads" *
            needs_gpu()) {
    std::vector<Case> cases;
    for (DType dtype : kDtypes)
      for (Mask mask : kMasks)
        for (int heads : {16, 128})
          for (int64_t sq : {1, 17, 128, 257})
            for (int64_t sk : {1, 100, 1024})
              cases.push_back(
                  {absorbed_mla(dtype, mask, {2, sq, sk}, heads), std::nullopt, kSampledRows});
    run_cases(cases);
  }

  TEST_CASE("a V tensor of its own, and two KV heads" * needs_gpu()) {
    std::vector<Case> cases;
    for (DType dtype : kDtypes)
      for (Mask mask : kMasks) {
        cases.push_back(
            {absorbed_mla(dtype, mask, {2, 130, 300}, 16, Layout::separate), std::nullopt});
        cases.push_back({absorbed_mla(dtype, mask, {2, 70, 257}, 16, Layout::v_in_k, 2),
                         std::nullopt, kSampledRows});
      }
    run_cases(cases);
  }

  TEST_CASE("every candidate config on an odd shape" * needs_gpu()) {
    const codegen::ArchLimits limits = codegen::arch_limits(query_device(0).arch());
    std::vector<Case> cases;
    for (Layout layout : {Layout::v_in_k, Layout::separate})
      for (Mask mask : kMasks) {
        const AttentionProblem problem = absorbed_mla(DType::bf16, mask, {2, 77, 301}, 16, layout);
        const std::vector<TileConfig> configs = codegen::candidates(problem.spec, limits);
        CHECK_MESSAGE(!configs.empty(), to_string(problem.spec));
        for (const TileConfig& config : configs)
          cases.push_back({problem, config, kSampledRows});
      }
    run_cases(cases);
  }

  TEST_CASE("seqlen_k = 0 gives O = 0 and LSE = -inf; causal rows that see no key too" *
            needs_gpu()) {
    std::vector<Case> cases;
    for (DType dtype : kDtypes)
      for (Mask mask : kMasks)
        cases.push_back({absorbed_mla(dtype, mask, {2, 17, 0}, 16)});
    for (const Outcome& outcome : run_cases(cases)) {
      for (double o : outcome.kernel.o)
        CHECK(o == 0.0);
      for (double lse : outcome.kernel.lse)
        CHECK(lse == -INFINITY);
    }

    // Sq > Sk, causal: queries before Sq - Sk see no key.
    const std::vector<Case> causal = {{absorbed_mla(DType::bf16, Mask::causal, {1, 150, 40}, 16)},
                                      {absorbed_mla(DType::fp16, Mask::causal, {2, 70, 1}, 16)}};
    const std::vector<Outcome> outcomes = run_cases(causal);
    for (size_t c = 0; c < causal.size(); ++c) {
      const AttentionShape& shape = causal[c].problem.shape;
      const tuner::ForwardRows& kernel = outcomes[c].kernel;
      int64_t bad = 0;
      for (size_t r = 0; r < kernel.rows.size(); ++r) {
        if (kernel.rows[r].query >= shape.seqlen_q - shape.seqlen_k) continue;
        bad += kernel.lse[r] != -INFINITY;
        for (size_t d = 0; d < 512; ++d)
          bad += kernel.o[r * 512 + d] != 0.0;
      }
      CHECK_MESSAGE(bad == 0, describe(causal[c].problem, std::nullopt));
    }
  }

  TEST_CASE("repeated runs are bit-identical" * needs_gpu()) {
    const AttentionProblem problem = absorbed_mla(DType::bf16, Mask::causal, {2, 200, 333}, 16);
    const ForwardPlan plan(problem);
    const uint64_t seed = test::test_seed();
    INFO(replay_hint(seed));
    test::DeviceAttention device = test::upload(tuner::random_inputs(problem, seed));
    std::vector<std::vector<uint16_t>> results;
    for (int run = 0; run < 2; ++run) {
      test::poison_outputs(device);
      plan.run(device.args, nullptr);
      test::synchronize();
      std::vector<uint16_t>& o = results.emplace_back(device.o.size() / 2);
      device.o.download(o.data(), device.o.size());
    }
    CHECK(results[0] == results[1]);
    CHECK(test::count_nan_outputs(device) == 0);
  }

  // Last in the file: a launch that should have been refused can leave the context unusable.
  TEST_CASE("v_in_k: run() takes V only as K's own view" * needs_gpu()) {
    const AttentionProblem problem = absorbed_mla(DType::bf16, Mask::none, {2, 33, 65}, 16);
    const ForwardPlan plan(problem);
    const uint64_t seed = test::test_seed();
    INFO(replay_hint(seed));
    test::DeviceAttention device = test::upload(tuner::random_inputs(problem, seed));
    REQUIRE(device.inputs.size() == 2); // q and k: no V buffer exists
    CHECK(device.args.v.data == device.args.k.data);
    plan.run(device.args, nullptr);
    test::synchronize();

    const auto refused = [&](const char* what, auto&& change) {
      ForwardArgs args = device.args;
      change(args);
      INFO(std::string(what));
      try {
        plan.run(args, nullptr);
        FAIL_CHECK(fmt::format("run() accepted {}", what));
      } catch (const Error& e) {
        CHECK_MESSAGE(e.kind() == ErrorKind::invalid_argument, std::string(e.what()));
        CHECK_MESSAGE(std::string(e.what()).find("v_in_k") != std::string::npos, e.what());
      }
    };
    test::GuardedBuffer other_v(device.inputs[1].size());
    refused("a separate V buffer", [&](ForwardArgs& a) {
      a.v = TensorView{other_v.data(), a.k.batch_stride, a.k.seq_stride, a.k.head_stride};
    });
    refused("K's data with other strides", [](ForwardArgs& a) { a.v.seq_stride += 8; });
    test::synchronize();
    const std::string guards = test::check_guards(device);
    CHECK_MESSAGE(guards.empty(), guards);
  }

} // TEST_SUITE

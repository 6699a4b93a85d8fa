// The Hopper (wgmma) forwards on the device against the fp64 reference, by the rules of
// test_gpu_forward.cpp (fresh inputs, NaN-poisoned outputs, guard bands): every case runs both
// the kernel whose warpgroups all load (cp.async) and the warp-specialized one (a TMA loader
// warpgroup). On a GPU that is not sm_90a the cases say so and check nothing.
#include "tests/forward_cases.h"

#include <attnjit/device.h>

#include <doctest/doctest.h>

#include <cmath>

using namespace attnjit;
using attnjit::test::Case;
using attnjit::test::needs_gpu;
using attnjit::test::Outcome;
using attnjit::test::run_cases;

namespace {

bool on_hopper() {
  const DeviceInfo device = query_device(0);
  if (device.arch() == "sm_90a") return true;
  MESSAGE("skipped: the wgmma forward needs sm_90a; device 0 is ", device.name, " (", device.arch(),
          ")");
  return false;
}

AttentionProblem make_problem(DType dtype, int dqk, int dv, Mask mask, AttentionShape shape,
                              int heads = 4, int kv_heads = 4) {
  AttentionProblem problem;
  problem.spec.dtype = dtype;
  problem.spec.head_dim_qk = dqk;
  problem.spec.head_dim_v = dv;
  problem.spec.num_heads = heads;
  problem.spec.num_kv_heads = kv_heads;
  problem.spec.mask = mask;
  problem.shape = shape;
  return problem;
}

// `warps` computing warps (64 query rows per 4); warp-specialized adds the loading warpgroup.
TileConfig wgmma(int warps, int block_n, int stages = 2, bool ws = false) {
  return {16 * warps, block_n, ws ? warps + 4 : warps, stages, false, true, ws};
}

constexpr bool kBothKernels[] = {false, true}; // warp_specialized

constexpr DType kDtypes[] = {DType::bf16, DType::fp16};
constexpr Mask kMasks[] = {Mask::none, Mask::causal};

} // namespace

TEST_SUITE("gpu.forward_wgmma") {
  TEST_CASE("Sq == Sk from 1 to 1000, head dims 64 and 128" * needs_gpu()) {
    if (!on_hopper()) return;
    std::vector<Case> cases;
    for (bool ws : kBothKernels)
      for (DType dtype : kDtypes)
        for (int d : {64, 128})
          for (int64_t s : {1, 17, 127, 1000})
            for (Mask mask : kMasks)
              cases.push_back({make_problem(dtype, d, d, mask, {1, s, s}), wgmma(8, 128, 2, ws)});
    run_cases(cases);
  }

  TEST_CASE("one and three warpgroups, block_n 64 to 192, three stages" * needs_gpu()) {
    if (!on_hopper()) return;
    std::vector<Case> cases;
    for (bool ws : kBothKernels) {
      for (Mask mask : kMasks)
        for (int warps : {4, 12})
          for (int block_n : {64, 96, 192}) {
            if (warps == 12 && block_n == 192) continue; // over the registers of 384 threads
            cases.push_back({make_problem(DType::bf16, 64, 64, mask, {2, 333, 333}),
                             wgmma(warps, block_n, 2, ws)});
            cases.push_back({make_problem(DType::fp16, 128, 128, mask, {1, 200, 517}),
                             wgmma(warps, 64, 2, ws)});
          }
      for (Mask mask : kMasks)
        for (int64_t sk : {1, 100, 1000}) // fewer, as many and more key blocks than slots
          cases.push_back(
              {make_problem(DType::bf16, 128, 128, mask, {1, 150, sk}), wgmma(8, 128, 3, ws)});
    }
    run_cases(cases);
  }

  TEST_CASE("Sq != Sk, batch > 1, GQA, MQA, packed QKV" * needs_gpu()) {
    if (!on_hopper()) return;
    std::vector<Case> cases;
    for (bool ws : kBothKernels)
      for (Mask mask : kMasks) {
        for (AttentionShape shape : {AttentionShape{1, 100, 300}, AttentionShape{1, 300, 100},
                                     AttentionShape{3, 129, 129}, AttentionShape{2, 65, 190}})
          cases.push_back({make_problem(DType::bf16, 128, 128, mask, shape), wgmma(8, 128, 2, ws)});
        for (int kv_heads : {2, 1})
          cases.push_back({make_problem(DType::bf16, 128, 128, mask, {2, 200, 200}, 8, kv_heads),
                           wgmma(8, 128, 2, ws)});
        AttentionProblem packed = make_problem(DType::fp16, 64, 64, mask, {2, 150, 150});
        packed.spec.layout = Layout::packed_qkv;
        cases.push_back({packed, wgmma(8, 128, 2, ws)});
      }
    run_cases(cases);
  }

  TEST_CASE("MLA 192/128, head dim 256, custom scale" * needs_gpu()) {
    if (!on_hopper()) return;
    std::vector<Case> cases;
    for (bool ws : kBothKernels)
      for (DType dtype : kDtypes)
        for (Mask mask : kMasks) {
          cases.push_back(
              {make_problem(dtype, 192, 128, mask, {2, 127, 127}), wgmma(8, 128, 2, ws)});
          cases.push_back(
              {make_problem(dtype, 256, 256, mask, {1, 130, 130}), wgmma(4, 64, 2, ws)});
          AttentionProblem scaled = make_problem(dtype, 128, 128, mask, {1, 127, 127});
          scaled.softmax_scale = 0.02f;
          cases.push_back({scaled, wgmma(8, 128, 2, ws)});
        }
    run_cases(cases);
  }

  TEST_CASE("seqlen_k = 0, and causal rows that see no key: O = 0, LSE = -inf" * needs_gpu()) {
    if (!on_hopper()) return;
    std::vector<Case> cases;
    for (bool ws : kBothKernels)
      for (DType dtype : kDtypes) {
        cases.push_back(
            {make_problem(dtype, 128, 128, Mask::none, {2, 17, 0}), wgmma(8, 128, 2, ws)});
        cases.push_back(
            {make_problem(dtype, 64, 64, Mask::causal, {1, 300, 100}), wgmma(8, 128, 2, ws)});
      }
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
      CHECK_MESSAGE(bad == 0, test::describe(cases[c].problem, cases[c].config));
    }
  }

  TEST_CASE("CTAs that walk many tiles: partial tiles, Sq != Sk, GQA, packed, no keys" *
            needs_gpu()) {
    if (!on_hopper()) return;
    // Each has several times the tiles the GPU holds CTAs for (132 SMs: 132 CTAs of two
    // computing warpgroups, 264 of one), so every CTA takes tiles of different heads and
    // batches, and its ring and Q barriers run on across them.
    std::vector<Case> cases;
    for (DType dtype : kDtypes) {
      cases.push_back({make_problem(dtype, 128, 128, Mask::none, {2, 777, 1300}, 40, 8),
                       wgmma(8, 128, 2, true), 512});
      cases.push_back({make_problem(dtype, 64, 64, Mask::none, {3, 1000, 1000}, 48, 48),
                       wgmma(4, 128, 2, true), 512});
      cases.push_back({make_problem(dtype, 128, 128, Mask::none, {1, 1000, 1000}, 64, 1),
                       wgmma(8, 96, 3, true), 512});
      cases.push_back({make_problem(dtype, 192, 128, Mask::none, {1, 1000, 900}, 64, 64),
                       wgmma(8, 128, 2, true), 512});
      AttentionProblem packed = make_problem(dtype, 64, 64, Mask::none, {2, 1000, 1000}, 40, 40);
      packed.spec.layout = Layout::packed_qkv;
      cases.push_back({packed, wgmma(8, 128, 2, true), 512});
    }
    run_cases(cases);
    // No key at all: every tile still takes its Q and writes O = 0, LSE = -inf.
    std::vector<Case> empty{{make_problem(DType::bf16, 128, 128, Mask::none, {2, 1000, 0}, 64, 64),
                             wgmma(8, 128, 2, true), 256}};
    const std::vector<Outcome> outcomes = run_cases(empty);
    const tuner::ForwardRows& kernel = outcomes[0].kernel;
    int64_t bad = 0;
    for (size_t r = 0; r < kernel.rows.size(); ++r) {
      bad += kernel.lse[r] != -INFINITY;
      for (size_t d = 0; d < 128; ++d)
        bad += kernel.o[r * 128 + d] != 0.0;
    }
    CHECK(kernel.rows.size() == 256);
    CHECK(bad == 0);
  }

  TEST_CASE("a large problem, sampled rows" * needs_gpu()) {
    if (!on_hopper()) return;
    std::vector<Case> cases;
    for (bool ws : kBothKernels) {
      cases.push_back({make_problem(DType::bf16, 128, 128, Mask::none, {1, 4096, 4096}, 8, 8),
                       wgmma(8, 128, 2, ws), 512});
      cases.push_back({make_problem(DType::bf16, 128, 128, Mask::causal, {1, 4096, 4096}, 8, 2),
                       wgmma(8, 128, 2, ws), 512});
    }
    run_cases(cases);
  }
}

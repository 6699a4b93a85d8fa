// Backward codegen on the CPU: rules, generated source, and NVRTC compiling every backward
// instantiation the tuner may ask for, for sm_80 and sm_90a (to CUBIN, so ptxas runs too).
#include "codegen/codegen.h"
#include "codegen/tile_rules.h"
#include "runtime/nvrtc_compiler.h"
#include "tests/nvrtc_sweep.h"

#include <attnjit/error.h>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <atomic>
#include <mutex>
#include <thread>

using namespace attnjit;

namespace {

KernelSpec backward_spec(int d, DType dtype, Mask mask, int kv_heads = 32) {
  KernelSpec s;
  s.pass = Pass::backward;
  s.head_dim_qk = s.head_dim_v = d;
  s.dtype = dtype;
  s.mask = mask;
  s.num_kv_heads = kv_heads;
  return s;
}

} // namespace

TEST_SUITE("codegen.backward") {
  TEST_CASE("generated source lists the three launches and every parameter") {
    const KernelSpec spec = backward_spec(128, DType::bf16, Mask::causal, 8);
    const TileConfig config{64, 128, 8, 2, false};
    const auto k = codegen::generate_backward(spec, config);
    CHECK(k.slug == "bwd_gqa_d128_bf16_causal_m64n128w8s2");
    CHECK(k.threads == 256);
    CHECK(k.dynamic_smem == codegen::backward_smem_bytes(spec, config));
    CHECK(k.name_expressions().size() == 4);
    for (const std::string& piece :
         {std::string("#include <attnjit/bwd_kernel.cuh>"), std::string("/*HEAD_DIM_QK=*/128"),
          std::string("/*BLOCK_M=*/64"), std::string("/*BLOCK_N=*/128"),
          std::string("/*NUM_WARPS=*/8"), std::string("/*CAUSAL=*/true"),
          k.helper_name_expressions[0], k.helper_name_expressions[1]})
      CHECK_MESSAGE(k.source.find(piece) != std::string::npos, piece);
    CHECK(codegen::generate(spec, config).source == k.source);
  }

  TEST_CASE("backward rules say why a config cannot run") {
    const auto limits = codegen::arch_limits("sm_90a");
    const KernelSpec spec = backward_spec(128, DType::bf16, Mask::none);
    CHECK(codegen::why_not(spec, {64, 96, 4, 2, false}, limits).find("16 * num_warps") !=
          std::string::npos);
    CHECK(codegen::why_not(spec, {64, 128, 8, 3, false}, limits).find("two stages") !=
          std::string::npos);
    // The warp-specialized kernel's ring takes a third stage (d128: 227 KiB of 227), not a fourth.
    CHECK(codegen::why_not(spec, {64, 128, 12, 3, false, true, true}, limits).empty());
    CHECK(codegen::why_not(spec, {64, 128, 12, 4, false, true, true}, limits).find("two stages") !=
          std::string::npos);
    CHECK(codegen::why_not(spec, {128, 128, 8, 2, false}, limits).find("registers") !=
          std::string::npos);
    CHECK(codegen::why_not(spec, {64, 128, 8, 2, true}, limits).find("q_in_registers") !=
          std::string::npos);
    KernelSpec d256 = backward_spec(256, DType::bf16, Mask::none);
    try {
      validate(d256);
      FAIL("d256 backward should be refused");
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::unsupported);
      CHECK(std::string(e.what()).find("256") != std::string::npos);
    }
    for (const char* arch : {"sm_80", "sm_86", "sm_90a"})
      for (int d : {32, 64, 96, 128}) {
        const auto l = codegen::arch_limits(arch);
        const KernelSpec s = backward_spec(d, DType::fp16, Mask::causal);
        const auto all = codegen::candidates(s, l);
        CHECK_MESSAGE(!all.empty(), fmt::format("{} d{}", arch, d));
        for (const auto& c : all)
          CHECK(codegen::why_not(s, c, l).empty());
        CHECK(std::find(all.begin(), all.end(), codegen::default_config(s, l)) != all.end());
      }
  }

  TEST_CASE("NVRTC compiles every backward instantiation to CUBIN for sm_80 and sm_90a") {
    std::vector<test::CompileJob> jobs;
    for (const char* arch : {"sm_80", "sm_90a"})
      for (auto [dqk, dv] : std::initializer_list<std::pair<int, int>>{
               {32, 32}, {64, 64}, {96, 96}, {128, 128}, {192, 128}})
        for (DType dtype : {DType::bf16, DType::fp16})
          for (Mask mask : {Mask::none, Mask::causal}) {
            KernelSpec spec = backward_spec(dqk, dtype, mask);
            spec.head_dim_v = dv;
            const auto limits = codegen::arch_limits(arch);
            for (const auto& c : codegen::candidates(spec, limits))
              jobs.push_back({spec, c, arch});
            KernelSpec deterministic = spec; // its dQ kernel has fixed tiles: one config is enough
            deterministic.deterministic = true;
            jobs.push_back({deterministic, codegen::default_config(spec, limits), arch});
          }
    const test::SweepResult result = test::compile_all(jobs);
    MESSAGE(fmt::format("compiled {} backward instantiations ({} spill registers)", jobs.size(),
                        result.spilling));
    for (const auto& f : result.failures)
      FAIL_CHECK(f);
  }
}

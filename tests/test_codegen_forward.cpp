// Codegen and tile rules on the CPU, and NVRTC compiling every forward instantiation the tuner
// may ask for, for sm_80 and sm_90a (to CUBIN, so ptxas runs too).
#include "codegen/argument_checks.h"
#include "codegen/codegen.h"
#include "codegen/forward_launch.h"
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

KernelSpec spec_of(int d, DType dtype, Mask mask) {
  KernelSpec s;
  s.head_dim_qk = s.head_dim_v = d;
  s.dtype = dtype;
  s.mask = mask;
  return s;
}

ErrorKind error_kind_of(auto&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.kind();
  }
  FAIL("expected an attnjit::Error");
  return ErrorKind::internal;
}

std::string error_message_of(auto&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  FAIL("expected an attnjit::Error");
  return {};
}

// Absorbed MLA: Q and K of 576 columns (512 latent + 64 rope), V the first 512 of K's.
KernelSpec absorbed_mla(DType dtype, Mask mask, Layout layout = Layout::v_in_k) {
  KernelSpec s = spec_of(576, dtype, mask);
  s.head_dim_v = 512;
  s.num_heads = 128;
  s.num_kv_heads = 1;
  s.layout = layout;
  return s;
}

} // namespace

TEST_SUITE("codegen.forward") {
  TEST_CASE("generated source names every template parameter") {
    const KernelSpec spec = spec_of(128, DType::bf16, Mask::causal);
    const TileConfig config{64, 64, 4, 3, true};
    const auto k = codegen::generate_forward(spec, config);
    CHECK(k.slug == "fwd_mha_d128_bf16_causal_m64n64w4s3q");
    CHECK(k.threads == 128);
    CHECK(k.dynamic_smem == codegen::forward_smem_bytes(spec, config));
    CHECK(k.source.find("#include <attnjit/fwd_kernel.cuh>") != std::string::npos);
    for (const char* piece : {"attnjit::bf16_t", "/*HEAD_DIM_QK=*/128", "/*HEAD_DIM_V=*/128",
                              "/*BLOCK_M=*/64", "/*BLOCK_N=*/64", "/*NUM_WARPS=*/4", "/*STAGES=*/3",
                              "/*CAUSAL=*/true", "/*Q_IN_REGS=*/true"})
      CHECK_MESSAGE(k.source.find(piece) != std::string::npos, piece);
    CHECK(k.source.find(k.name_expression) != std::string::npos);
  }

  TEST_CASE("slugs distinguish types, dtypes and masks") {
    KernelSpec gqa = spec_of(64, DType::fp16, Mask::none);
    gqa.num_kv_heads = 8;
    CHECK(kernel_slug(gqa, {64, 32, 4, 2, false}) == "fwd_gqa_d64_fp16_m64n32w4s2");
    gqa.num_kv_heads = 1;
    CHECK(kernel_slug(gqa, {64, 32, 4, 2, false}) == "fwd_mqa_d64_fp16_m64n32w4s2");
    KernelSpec packed = spec_of(64, DType::bf16, Mask::none);
    packed.layout = Layout::packed_qkv;
    CHECK(kernel_slug(packed, {64, 32, 4, 2, false}) == "fwd_mhsa_d64_bf16_m64n32w4s2");
    // The Hopper flags end the slug and the config's text, the warp-specialized one last.
    const KernelSpec mha = spec_of(128, DType::bf16, Mask::none);
    CHECK(kernel_slug(mha, {128, 128, 12, 2, false, true, true}) ==
          "fwd_mha_d128_bf16_m128n128w12s2_wgmma_ws");
    CHECK(to_string(TileConfig{128, 128, 12, 2, false, true, true}) ==
          "block_m=128 block_n=128 warps=12 stages=2 q_in_regs=0 wgmma ws");
    CHECK(to_string(TileConfig{128, 128, 8, 2, false, true}) ==
          "block_m=128 block_n=128 warps=8 stages=2 q_in_regs=0 wgmma");
    CHECK(codegen::generate_forward(packed, {64, 32, 4, 2, false}).source !=
          codegen::generate_forward(spec_of(64, DType::fp16, Mask::none), {64, 32, 4, 2, false})
              .source);
  }

  TEST_CASE("bad specs and configs are refused with the reason") {
    CHECK(error_kind_of([] {
            codegen::generate_forward(spec_of(100, DType::bf16, Mask::none), {});
          }) == ErrorKind::unsupported);
    CHECK(error_message_of([] {
            codegen::generate_forward(spec_of(100, DType::bf16, Mask::none), {});
          }).find("head dim 100") != std::string::npos);
    CHECK(error_message_of([] {
            codegen::generate_forward(spec_of(128, DType::bf16, Mask::none), {96, 64, 4, 2, false});
          }).find("block_m 96") != std::string::npos);
    CHECK(
        error_message_of([] {
          codegen::generate_forward(spec_of(128, DType::bf16, Mask::none), {128, 64, 4, 1, false});
        }).find("num_stages") != std::string::npos);
    KernelSpec ratio = spec_of(64, DType::bf16, Mask::none);
    ratio.num_heads = 6, ratio.num_kv_heads = 4;
    CHECK(error_message_of([&] { validate(ratio); }).find("multiple of num_kv_heads") !=
          std::string::npos);
    AttentionProblem zero;
    zero.shape.batch = 0;
    CHECK(error_message_of([&] { validate(zero); }).find("batch") != std::string::npos);
    AttentionProblem negative;
    negative.shape.seqlen_k = -5;
    CHECK(error_message_of([&] { validate(negative); }).find("seqlen_k") != std::string::npos);
    AttentionProblem empty_keys;
    empty_keys.shape.seqlen_k = 0; // defined: O = 0, LSE = -inf
    CHECK_NOTHROW(validate(empty_keys));
    CHECK(codegen::why_not(spec_of(256, DType::bf16, Mask::none), {128, 128, 4, 3, true},
                           codegen::arch_limits("sm_86"))
              .find("shared memory") != std::string::npos);
  }

  TEST_CASE("the wide-Dv forward serves absorbed MLA, V read from K") {
    const KernelSpec spec = absorbed_mla(DType::bf16, Mask::causal);
    CHECK(codegen::uses_wide_forward(spec));
    CHECK_FALSE(codegen::uses_wide_forward(spec_of(256, DType::bf16, Mask::none)));
    const TileConfig on_h100 = codegen::default_config(spec, codegen::arch_limits("sm_90a"));
    CHECK(on_h100 == TileConfig{64, 64, 8, 2, false});
    // sm_80's 163 KiB take 64 keys of 576 columns once, not twice: block_n 32.
    CHECK(codegen::default_config(spec, codegen::arch_limits("sm_80")) ==
          TileConfig{64, 32, 8, 2, false});
    const auto k = codegen::generate_forward(spec, on_h100);
    CHECK(k.slug == "fwd_mla_d576x512_vink_bf16_causal_m64n64w8s2");
    CHECK(k.threads == 256);
    CHECK(k.dynamic_smem == codegen::forward_smem_bytes(spec, on_h100));
    CHECK(k.dynamic_smem <= codegen::arch_limits("sm_90a").max_smem_per_block);
    CHECK(k.name_expression == "attnjit::flash_fwd_wide_kernel<Traits>");
    for (const char* piece :
         {"#include <attnjit/fwd_wide_kernel.cuh>", "/*HEAD_DIM_QK=*/576", "/*HEAD_DIM_V=*/512",
          "/*CAUSAL=*/true", "/*V_FROM_K=*/true", "static_assert(Traits::kSmemBytes =="})
      CHECK_MESSAGE(k.source.find(piece) != std::string::npos, piece);
    // A V tensor of its own costs a V ring: sm_80 fits only 16 rows and 2 warps, sm_86 nothing,
    // and says so.
    const KernelSpec separate = absorbed_mla(DType::fp16, Mask::none, Layout::separate);
    CHECK(codegen::generate_forward(separate, {64, 32, 8, 2, false})
              .source.find("/*V_FROM_K=*/false") != std::string::npos);
    CHECK(
        codegen::forward_smem_bytes(separate, {64, 32, 8, 2, false}) >
        codegen::forward_smem_bytes(absorbed_mla(DType::fp16, Mask::none), {64, 32, 8, 2, false}));
    CHECK(codegen::default_config(separate, codegen::arch_limits("sm_80")) ==
          TileConfig{16, 32, 2, 2, false});
    const std::string why =
        error_message_of([&] { codegen::default_config(separate, codegen::arch_limits("sm_86")); });
    CHECK_MESSAGE(why.find("d576/512") != std::string::npos, why);
    CHECK_MESSAGE(why.find("sm_86") != std::string::npos, why);
  }

  TEST_CASE("wide-Dv tile rules and spec rules say why not") {
    const KernelSpec spec = absorbed_mla(DType::bf16, Mask::none);
    const auto h100 = codegen::arch_limits("sm_90a");
    CHECK(codegen::why_not(spec, {64, 64, 8, 2, true}, h100).find("q_in_registers") !=
          std::string::npos);
    CHECK(codegen::why_not(spec, {64, 64, 4, 2, false}, h100).find("spill") != std::string::npos);
    CHECK(codegen::why_not(spec, {64, 64, 2, 2, false}, h100).find("row tiles") !=
          std::string::npos);
    CHECK(codegen::why_not(spec, {16, 32, 4, 2, false}, h100).find("16-key") != std::string::npos);
    CHECK(codegen::why_not(spec, {64, 128, 8, 2, false}, h100).find("shared memory") !=
          std::string::npos);
    CHECK(codegen::why_not(spec, {32, 128, 16, 2, false}, h100).find("64-column") !=
          std::string::npos);

    KernelSpec other = spec_of(128, DType::bf16, Mask::none);
    other.layout = Layout::v_in_k;
    CHECK(error_kind_of([&] { validate(other); }) == ErrorKind::unsupported);
    CHECK(error_message_of([&] { validate(other); }).find("576/512") != std::string::npos);
    KernelSpec half = absorbed_mla(DType::bf16, Mask::none);
    half.head_dim_v = 256;
    CHECK(error_message_of([&] { validate(half); }).find("head dim 576") != std::string::npos);
    KernelSpec backward = absorbed_mla(DType::bf16, Mask::none, Layout::separate);
    backward.pass = Pass::backward;
    CHECK(error_message_of([&] { validate(backward); }).find("backward") != std::string::npos);
  }

  TEST_CASE("v_in_k arguments: V must be K's own view") {
    alignas(16) static unsigned short buffer[64];
    const TensorView k{buffer, 4608, 576, 576};
    CHECK_NOTHROW(codegen::check_v_in_k(k, k, 512));
    TensorView v = k;
    v.data = buffer + 8;
    CHECK(error_kind_of([&] { codegen::check_v_in_k(k, v, 512); }) == ErrorKind::invalid_argument);
    v = k;
    v.seq_stride = 512;
    CHECK(error_message_of([&] { codegen::check_v_in_k(k, v, 512); }).find("k's view") !=
          std::string::npos);
  }

  TEST_CASE("every candidate passes the rules and the default is a candidate") {
    for (const char* arch : {"sm_80", "sm_86", "sm_90a"}) {
      const auto limits = codegen::arch_limits(arch);
      const KernelSpec wide = absorbed_mla(DType::bf16, Mask::none);
      const auto all = codegen::candidates(wide, limits);
      CHECK_MESSAGE(!all.empty(), fmt::format("{} 576/512", arch));
      for (const auto& c : all)
        CHECK(codegen::why_not(wide, c, limits).empty());
      const TileConfig def = codegen::default_config(wide, limits);
      CHECK(std::find(all.begin(), all.end(), def) != all.end());
    }
    for (const char* arch : {"sm_80", "sm_86", "sm_90a"})
      for (int d : {32, 64, 96, 128, 256}) {
        const auto limits = codegen::arch_limits(arch);
        const KernelSpec spec = spec_of(d, DType::bf16, Mask::none);
        const auto all = codegen::candidates(spec, limits);
        CHECK_MESSAGE(!all.empty(), fmt::format("{} d{}", arch, d));
        for (const auto& c : all)
          CHECK(codegen::why_not(spec, c, limits).empty());
        const TileConfig def = codegen::default_config(spec, limits);
        CHECK(std::find(all.begin(), all.end(), def) != all.end());
      }
  }

  TEST_CASE("causal tiles go in groups of heads whose K and V a quarter of the L2 holds") {
    constexpr long long h100_l2 = 50ll << 20; // a quarter: 12.5 MiB
    AttentionProblem p;                       // B=1 S=4096 H=32 D=128: 2 MiB of K/V a head
    p.spec.mask = Mask::causal;
    CHECK(codegen::causal_head_groups(p, h100_l2) == 6); // at most 6 heads: 6, 6, 5, 5, 5, 5
    p.spec.num_kv_heads = 8; // four query heads share a KV head's 2 MiB: at most 25
    CHECK(codegen::causal_head_groups(p, h100_l2) == 2);
    p.spec.num_kv_heads = 1; // every head fits: one group of every (b, h) pair
    CHECK(codegen::causal_head_groups(p, h100_l2) == 1);
    p.shape.batch = 2;
    CHECK(codegen::causal_head_groups(p, h100_l2) == 1);
    p.spec.num_kv_heads = 32;
    p.shape.seqlen_k = 1 << 20; // one head's K/V is past the L2: one head at a time
    CHECK(codegen::causal_head_groups(p, h100_l2) == 64);
    CHECK(codegen::causal_head_groups(p, 0) == 64);
    p.spec.head_dim_qk = 576, p.spec.head_dim_v = 512, p.spec.num_heads = 128;
    p.spec.num_kv_heads = 1, p.spec.layout = Layout::v_in_k, p.shape.seqlen_k = 4096;
    CHECK(codegen::causal_head_groups(p, h100_l2) == 1); // V is K's: 4.5 MiB for all 128 heads
    p.shape.batch = 0;
    CHECK(codegen::causal_head_groups(p, h100_l2) == 1);
  }

  TEST_CASE("flop counts follow the benchmark's rule") {
    AttentionProblem p; // B=1 S=4096 H=32 D=128
    CHECK(flop_count(p) == doctest::Approx(4.0 * 32 * 4096.0 * 4096.0 * 128));
    p.spec.mask = Mask::causal;
    CHECK(flop_count(p) == doctest::Approx(2.0 * 32 * 4096.0 * 4096.0 * 128));
    p.spec.pass = Pass::backward;
    CHECK(flop_count(p) == doctest::Approx(5.0 * 32 * 4096.0 * 4096.0 * 128));
  }

  TEST_CASE("NVRTC compiles every forward instantiation to CUBIN for sm_80 and sm_90a") {
    std::vector<test::CompileJob> jobs;
    for (const char* arch : {"sm_80", "sm_90a"})
      for (auto [dqk, dv] : std::initializer_list<std::pair<int, int>>{
               {32, 32}, {64, 64}, {96, 96}, {128, 128}, {256, 256}, {192, 128}})
        for (DType dtype : {DType::bf16, DType::fp16})
          for (Mask mask : {Mask::none, Mask::causal}) {
            KernelSpec spec = spec_of(dqk, dtype, mask);
            spec.head_dim_v = dv;
            for (const auto& c : codegen::candidates(spec, codegen::arch_limits(arch)))
              jobs.push_back({spec, c, arch});
          }
    // The wide-Dv forward: absorbed MLA, V from K and (sm_90a only fits it) a V of its own.
    for (const char* arch : {"sm_80", "sm_90a"})
      for (Layout layout : {Layout::v_in_k, Layout::separate})
        for (DType dtype : {DType::bf16, DType::fp16})
          for (Mask mask : {Mask::none, Mask::causal}) {
            const KernelSpec spec = absorbed_mla(dtype, mask, layout);
            for (const auto& c : codegen::candidates(spec, codegen::arch_limits(arch)))
              jobs.push_back({spec, c, arch});
          }
    const test::SweepResult result = test::compile_all(jobs);
    MESSAGE(fmt::format("compiled {} forward instantiations ({} spill registers; the tuner "
                        "prunes those)",
                        jobs.size(), result.spilling));
    for (const auto& f : result.failures)
      FAIL_CHECK(f);
    CHECK(result.failures.empty());
  }
}

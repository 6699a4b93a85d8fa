// The Hopper (wgmma) forwards on the CPU side, all-loading and warp-specialized: where their tile
// rules say no and why, the default table, the generated source (the wgmma instructions codegen
// writes) and an NVRTC compile.
#include "codegen/codegen.h"
#include "codegen/tile_rules.h"
#include "codegen/wgmma_source.h"
#include "runtime/nvrtc_compiler.h"

#include <attnjit/error.h>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <string>
#include <tuple>

using namespace attnjit;

namespace {

KernelSpec forward_spec(int dqk, int dv, Mask mask = Mask::none) {
  KernelSpec s;
  s.head_dim_qk = dqk;
  s.head_dim_v = dv;
  s.mask = mask;
  return s;
}

bool mentions(const std::string& text, const char* piece) {
  return text.find(piece) != std::string::npos;
}

} // namespace

// A warp-specialized kernel's source (pass "fwd" or "bwd", traits prefix "Fwd" or "Bwd") names
// its kernel, header, traits and TMA argument; NVRTC compiles it for sm_90a without fences
// injected around the MMAs or the MMAs serialized. Returns the generated kernel's resources, not
// a helper's: ptxas lists a program's kernels in its own order.
static runtime::ResourceUsage compile_warp_specialized(const codegen::GeneratedKernel& k,
                                                       const std::string& pass,
                                                       const std::string& traits) {
  CHECK(k.name_expression ==
        fmt::format("attnjit::flash_{}_ws_kernel<Traits>", pass == "fwd" ? "fwd" : "bwd_dkdv"));
  CHECK(mentions(k.source, fmt::format("#include <attnjit/{}_ws_kernel.cuh>", pass).c_str()));
  CHECK(mentions(k.source, fmt::format("attnjit::{}WsTraits<", traits).c_str()));
  CHECK(mentions(k.source, fmt::format("({}Params, {}TmaParams)", traits, traits).c_str()));
  const runtime::CompiledProgram program =
      runtime::compile({k.source, k.slug, k.name_expressions(), "sm_90a", {}});
  INFO(program.log);
  // ptxas says when it must add wgmma fences (C7519) or serialize the MMAs (C7510, C7520).
  CHECK_FALSE(mentions(program.log, "serialized"));
  CHECK_FALSE(mentions(program.log, "injected"));
  REQUIRE_FALSE(program.lowered_names.empty());
  const auto main =
      std::find_if(program.resources.begin(), program.resources.end(),
                   [&](const auto& r) { return r.kernel == program.lowered_names[0]; });
  REQUIRE(main != program.resources.end());
  return *main;
}

TEST_SUITE("codegen.wgmma") {
  TEST_CASE("tile rules say why not") {
    const auto h100 = codegen::arch_limits("sm_90a");
    const KernelSpec d128 = forward_spec(128, 128);
    const TileConfig ok{64, 96, 4, 2, false, true};
    CHECK(codegen::why_not(d128, ok, h100).empty());
    CHECK(mentions(codegen::why_not(d128, ok, codegen::arch_limits("sm_80")), "sm_90a"));
    CHECK(mentions(codegen::why_not(d128, ok, codegen::arch_limits("sm_90")), "sm_90a"));
    KernelSpec backward = d128;
    backward.pass = Pass::backward;
    CHECK(mentions(codegen::why_not(backward, ok, h100), "64 keys"));
    CHECK(codegen::why_not(backward, {64, 128, 8, 2, false, true}, h100).empty());
    CHECK(mentions(codegen::why_not(backward, {128, 128, 8, 2, false, true}, h100), "64 queries"));
    KernelSpec backward64 = forward_spec(64, 64);
    backward64.pass = Pass::backward;
    CHECK(codegen::why_not(backward64, {64, 64, 4, 2, false, true}, h100).empty());
    // Two warpgroups at d64: each sums all of dQ's columns over its own keys.
    CHECK(codegen::why_not(backward64, {64, 128, 8, 2, false, true}, h100).empty());
    CHECK(mentions(codegen::why_not(forward_spec(96, 96), ok, h100), "64-column"));
    CHECK(mentions(codegen::why_not(forward_spec(576, 512), {64, 64, 8, 2, false, true}, h100),
                   "wide-Dv"));
    CHECK(mentions(codegen::why_not(d128, {128, 96, 4, 2, false, true}, h100), "64 rows"));
    CHECK(mentions(codegen::why_not(d128, {96, 96, 6, 2, false, true}, h100), "warpgroups"));
    CHECK(mentions(codegen::why_not(d128, {64, 264, 4, 2, false, true}, h100), "256"));
    CHECK(mentions(codegen::why_not(d128, {64, 72, 4, 2, false, true}, h100), "multiple of 16"));
    CHECK(mentions(codegen::why_not(d128, {64, 96, 4, 1, false, true}, h100), "num_stages"));
    CHECK(mentions(codegen::why_not(d128, {64, 96, 4, 2, true, true}, h100), "q_in_registers"));
    // Registers: 12 warps get 170 per thread, too few for d128 with 128-key steps.
    CHECK(mentions(codegen::why_not(d128, {192, 128, 12, 2, false, true}, h100), "registers"));
    CHECK(mentions(codegen::why_not(forward_spec(192, 128), {128, 192, 8, 2, false, true}, h100),
                   "shared memory"));
  }

  TEST_CASE("warp-specialized: tile rules say why not") {
    const auto h100 = codegen::arch_limits("sm_90a");
    const KernelSpec d128 = forward_spec(128, 128);
    const TileConfig ok{128, 128, 12, 2, false, true, true};
    CHECK(codegen::why_not(d128, ok, h100).empty());
    CHECK(codegen::why_not(d128, {64, 128, 8, 2, false, true, true}, h100).empty());
    CHECK(mentions(codegen::why_not(d128, {128, 128, 12, 2, false, false, true}, h100),
                   "needs wgmma"));
    CHECK(mentions(codegen::why_not(d128, ok, codegen::arch_limits("sm_80")), "sm_90a"));
    // The backward: the computing warpgroups own 64 keys each.
    KernelSpec backward = d128;
    backward.pass = Pass::backward;
    CHECK(codegen::why_not(backward, {64, 128, 12, 2, false, true, true}, h100).empty());
    CHECK(mentions(codegen::why_not(backward, {64, 64, 8, 2, false, true, true}, h100),
                   "dQ would be 128 columns"));
    CHECK(mentions(codegen::why_not(backward, {64, 128, 8, 2, false, true, true}, h100),
                   "num_warps - 4"));
    CHECK(mentions(codegen::why_not(backward, {64, 192, 16, 2, false, true, true}, h100), "dQ"));
    // dQ's columns per computing warpgroup: a slice of whole 64-column groups where head_dim_qk
    // splits into them, else all of them (each warpgroup over its own keys).
    CHECK(codegen::backward_dq_columns(backward, {64, 128, 12, 2, false, true, true}) == 64);
    CHECK(codegen::backward_dq_columns(backward, {64, 192, 16, 2, false, true, true}) == 128);
    CHECK(codegen::backward_dq_columns(backward, {64, 64, 8, 2, false, true, true}) == 128);
    KernelSpec backward64 = forward_spec(64, 64);
    backward64.pass = Pass::backward;
    CHECK(codegen::why_not(backward64, {64, 64, 8, 2, false, true, true}, h100).empty());
    CHECK(codegen::why_not(backward64, {64, 128, 12, 3, false, true, true}, h100).empty());
    CHECK(codegen::why_not(backward64, {64, 128, 8, 2, false, true}, h100).empty());
    CHECK(codegen::backward_dq_columns(backward64, {64, 128, 12, 2, false, true, true}) == 64);
    KernelSpec mla = forward_spec(192, 128);
    mla.pass = Pass::backward;
    CHECK(mentions(codegen::why_not(mla, {64, 128, 12, 2, false, true, true}, h100),
                   "dQ would be 192 columns"));
    // Over own keys every computing warpgroup stages a whole 64 x Dqk fp32 dQ tile.
    CHECK(codegen::backward_smem_bytes(backward64, {64, 128, 12, 2, false, true, true}) ==
          codegen::backward_smem_bytes(backward64, {64, 128, 8, 2, false, true}) + 128 * 64 * 2 +
              2 * 64 * 64 * 4 + 128);
    // Twice dS^T, fp32 dQ (unless deterministic) and a 128-byte unit of mbarriers over the
    // all-loading backward.
    CHECK(codegen::backward_smem_bytes(backward, {64, 128, 12, 2, false, true, true}) ==
          codegen::backward_smem_bytes(backward, {64, 128, 8, 2, false, true}) + 128 * 64 * 2 +
              64 * 128 * 4 + 128);
    backward.deterministic = true;
    CHECK(codegen::backward_smem_bytes(backward, {64, 128, 12, 2, false, true, true}) ==
          codegen::backward_smem_bytes(backward, {64, 128, 8, 2, false, true}) + 128 * 64 * 2 +
              128);
    backward.deterministic = false;
    CHECK(mentions(codegen::why_not(d128, {64, 64, 4, 2, false, true, true}, h100), "8 to 16"));
    CHECK(mentions(codegen::why_not(d128, {256, 64, 20, 2, false, true, true}, h100), "8 to 16"));
    CHECK(mentions(codegen::why_not(d128, {192, 128, 12, 2, false, true, true}, h100),
                   "num_warps - 4"));
    // Three computing warpgroups get 160 registers each (setmaxnreg), too few for d128 x 128.
    CHECK(
        mentions(codegen::why_not(d128, {192, 128, 16, 2, false, true, true}, h100), "registers"));
    CHECK(
        codegen::why_not(forward_spec(64, 64), {192, 96, 16, 2, false, true, true}, h100).empty());
    // The mbarriers add 128 bytes to the all-loading kernel's shared memory; a kernel whose CTAs
    // walk tiles adds O's own space where it fits (128 x 128 bf16), and a causal one does not
    // walk. d256 at 128 x 80 does not walk either (its accumulators leave no room for the loop).
    CHECK(codegen::forward_walks_tiles(d128, ok));
    CHECK(codegen::forward_smem_bytes(d128, ok) ==
          codegen::forward_smem_bytes(d128, {128, 128, 8, 2, false, true}) + 128 * 128 * 2 + 128);
    KernelSpec causal = d128;
    causal.mask = Mask::causal;
    CHECK_FALSE(codegen::forward_walks_tiles(causal, ok));
    CHECK(codegen::forward_smem_bytes(causal, ok) ==
          codegen::forward_smem_bytes(causal, {128, 128, 8, 2, false, true}) + 128);
    CHECK_FALSE(
        codegen::forward_walks_tiles(forward_spec(256, 256), {128, 80, 12, 2, false, true, true}));
    CHECK_FALSE(codegen::forward_walks_tiles(d128, {128, 128, 8, 2, false, true}));
    // O has its own space (and the warps store it) only where the CTA walks and it fits; else
    // it is staged in Q's place and stored by TMA through O's tensor map: causal, d256, and
    // 192/128, whose Q and K/V leave no room for O's 32 KiB.
    CHECK(codegen::forward_o_has_own_smem(d128, ok));
    CHECK_FALSE(codegen::forward_o_has_own_smem(causal, ok));
    CHECK_FALSE(codegen::forward_o_has_own_smem(forward_spec(256, 256),
                                                {128, 80, 12, 2, false, true, true}));
    CHECK(codegen::forward_walks_tiles(forward_spec(192, 128), ok));
    CHECK_FALSE(codegen::forward_o_has_own_smem(forward_spec(192, 128), ok));
    CHECK_FALSE(codegen::forward_o_has_own_smem(d128, {128, 128, 8, 2, false, true}));
    int warp_specialized = 0;
    for (const TileConfig& c : codegen::candidates(d128, h100))
      warp_specialized += c.warp_specialized;
    CHECK(warp_specialized >= 10);
    for (const TileConfig& c : codegen::candidates(d128, codegen::arch_limits("sm_90")))
      CHECK_FALSE(c.warp_specialized);
  }

  TEST_CASE("the default on sm_90a is wgmma where it applies, mma.sync elsewhere") {
    const auto h100 = codegen::arch_limits("sm_90a");
    const struct {
      int dqk, dv;
      TileConfig config;
    } table[] = {{64, 64, {64, 128, 8, 2, false, true, true}},
                 {128, 128, {128, 128, 12, 2, false, true, true}},
                 {192, 128, {128, 128, 12, 2, false, true, true}},
                 {256, 256, {128, 80, 12, 2, false, true, true}}};
    for (const auto& [dqk, dv, config] : table)
      for (Mask mask : {Mask::none, Mask::causal}) {
        const KernelSpec spec = forward_spec(dqk, dv, mask);
        INFO(to_string(spec));
        CHECK(codegen::default_config(spec, h100) == config);
        CHECK_FALSE(codegen::default_config(spec, codegen::arch_limits("sm_80")).wgmma);
        CHECK_FALSE(codegen::default_config(spec, codegen::arch_limits("sm_90")).wgmma);
      }
    CHECK_FALSE(codegen::default_config(forward_spec(96, 96), h100).wgmma);
    // Backward: two computing warpgroups where dQ splits into 64-column slices, else one, behind
    // a loading warpgroup; MLA 192/128 (too many registers) and sm_80 keep mma.sync.
    const struct {
      int dqk, dv;
      bool wgmma;
      int block_n;
    } backward_table[] = {{128, 128, true, 128}, {64, 64, true, 64}, {192, 128, false, 128}};
    for (const auto& [dqk, dv, wgmma, block_n] : backward_table) {
      KernelSpec backward = forward_spec(dqk, dv);
      backward.pass = Pass::backward;
      INFO(to_string(backward));
      const TileConfig c = codegen::default_config(backward, h100);
      CHECK(c.wgmma == wgmma);
      CHECK(c.warp_specialized == wgmma);
      CHECK(c.block_n == block_n);
      CHECK_FALSE(codegen::default_config(backward, codegen::arch_limits("sm_80")).wgmma);
    }
    // Candidates: wgmma only for sm_90a.
    int hopper = 0;
    for (const TileConfig& c : codegen::candidates(forward_spec(128, 128), h100))
      hopper += c.wgmma;
    CHECK(hopper >= 10);
    for (const TileConfig& c :
         codegen::candidates(forward_spec(128, 128), codegen::arch_limits("sm_80")))
      CHECK_FALSE(c.wgmma);
  }

  TEST_CASE("generated source: the kernel, its traits and the instructions for S and O") {
    const KernelSpec spec = forward_spec(192, 128, Mask::causal);
    const TileConfig config{64, 96, 4, 3, false, true};
    const codegen::GeneratedKernel k = codegen::generate_forward(spec, config);
    CHECK(k.slug == "fwd_mla_d192x128_bf16_causal_m64n96w4s3_wgmma");
    CHECK(k.threads == 128);
    CHECK(k.dynamic_smem == codegen::forward_smem_bytes(spec, config));
    CHECK(k.name_expression == "attnjit::flash_fwd_wgmma_kernel<Traits>");
    for (const char* piece :
         {"#include <attnjit/fwd_wgmma_kernel.cuh>", "struct Wgmma<attnjit::bf16_t, 96>",
          "struct Wgmma<attnjit::bf16_t, 128>",
          "wgmma.mma_async.sync.aligned.m64n96k16.f32.bf16.bf16",
          "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16", "\"+f\"(d[15][3])",
          "/*STAGES=*/3", "/*CAUSAL=*/true", "static_assert(Traits::kSmemBytes =="})
      CHECK_MESSAGE(mentions(k.source, piece), piece);
    // O's N equal to block_n: one specialization, not two.
    const auto same =
        codegen::generate_forward(forward_spec(128, 128), {64, 128, 4, 2, false, true});
    CHECK(same.source.find("struct Wgmma<") == same.source.rfind("struct Wgmma<"));
    const std::string fp16 = codegen::wgmma_specialization(DType::fp16, 64);
    CHECK(mentions(fp16, "m64n64k16.f32.f16.f16"));
    CHECK(mentions(fp16, "%31},")); // 32 accumulators, then A and B
    CHECK(mentions(fp16, "%32, %33, acc, 1, 1, %35, %36;"));
    CHECK(mentions(fp16, "{%32, %33, %34, %35}, %36, acc, 1, 1, %38;"));
    CHECK_THROWS_AS(codegen::wgmma_specialization(DType::bf16, 100), Error);
    CHECK_THROWS_AS(codegen::wgmma_specialization(DType::bf16, 264), Error);
  }

  TEST_CASE("NVRTC compiles it for sm_90a without spills") {
    for (auto [dqk, dv] : {std::pair{128, 128}, {192, 128}}) {
      const KernelSpec spec = forward_spec(dqk, dv, Mask::causal);
      const TileConfig config{64, 96, 4, 2, false, true};
      const codegen::GeneratedKernel k = codegen::generate_forward(spec, config);
      const runtime::CompiledProgram program =
          runtime::compile({k.source, k.slug, k.name_expressions(), "sm_90a", {}});
      CHECK_FALSE(program.cubin.empty());
      REQUIRE(program.resources.size() == 1);
      INFO(program.log);
      CHECK(program.resources[0].spill_store_bytes == 0);
      CHECK(program.resources[0].spill_load_bytes == 0);
      CHECK_FALSE(mentions(program.log, "serialized")); // ptxas would say if wgmma waited each time
    }
  }

  TEST_CASE("warp-specialized: its source, and NVRTC compiles it without spills") {
    for (auto [dqk, dv, block_m, block_n, warps] : {std::tuple{128, 128, 128, 128, 12},
                                                    {192, 128, 128, 128, 12},
                                                    {256, 256, 128, 80, 12},
                                                    {64, 64, 64, 128, 8},
                                                    {64, 64, 192, 96, 16}}) {
      const KernelSpec spec = forward_spec(dqk, dv, Mask::causal);
      const TileConfig config{block_m, block_n, warps, 2, false, true, true};
      INFO(to_string(spec), " ", to_string(config));
      const codegen::GeneratedKernel k = codegen::generate_forward(spec, config);
      CHECK(k.threads == 32 * warps);
      CHECK(mentions(k.slug, "_wgmma_ws"));
      const runtime::ResourceUsage usage = compile_warp_specialized(k, "fwd", "Fwd");
      CHECK(usage.spill_store_bytes == 0);
      CHECK(usage.spill_load_bytes == 0);
    }
  }

  TEST_CASE("warp-specialized backward: its source, and NVRTC compiles it within its spill bound") {
    for (auto [dqk, dv, block_n, warps, mask, deterministic] :
         {std::tuple{128, 128, 128, 12, Mask::none, false},
          {128, 128, 128, 12, Mask::causal, false},
          {128, 128, 128, 12, Mask::causal, true},
          {64, 64, 64, 8, Mask::none, false},
          {64, 64, 128, 12, Mask::causal, false}}) {
      KernelSpec spec = forward_spec(dqk, dv, mask);
      spec.pass = Pass::backward;
      spec.deterministic = deterministic;
      const TileConfig config{64, block_n, warps, 2, false, true, true};
      INFO(to_string(spec), " ", to_string(config));
      const codegen::GeneratedKernel k = codegen::generate_backward(spec, config);
      CHECK(k.threads == 32 * warps);
      const runtime::ResourceUsage usage = compile_warp_specialized(k, "bwd", "Bwd");
      // Measured (docs/PERF.md, session 5): the computing warpgroups spill up to ~110 bytes a
      // thread at 240 registers (d128) and it is still the fastest backward by 18%; more than
      // this bound means the register budget got worse.
      CHECK(usage.spill_store_bytes <= 128);
      CHECK(usage.spill_load_bytes <= 160);
    }
  }
}

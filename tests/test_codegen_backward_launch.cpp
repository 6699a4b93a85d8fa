// The backward's launch geometry and workspace layout (codegen/backward_launch.h), which
// BackwardPlan and the tuner's bench share: no GPU needed.
#include "codegen/backward_launch.h"
#include "codegen/codegen.h"
#include "codegen/tile_rules.h"

#include <attnjit/error.h>

#include <doctest/doctest.h>

using namespace attnjit;

namespace {

AttentionProblem backward(int heads, int kv_heads, int64_t seqlen, int head_dim = 128) {
  AttentionProblem p;
  p.spec.pass = Pass::backward;
  p.spec.head_dim_qk = p.spec.head_dim_v = head_dim;
  p.spec.num_heads = heads;
  p.spec.num_kv_heads = kv_heads;
  p.shape = {1, seqlen, seqlen};
  return p;
}

} // namespace

TEST_SUITE("codegen.backward_launch") {
  TEST_CASE("MHA: one CTA per key block and head; D and the dQ accumulator in the workspace") {
    const codegen::BackwardLayout l =
        codegen::backward_layout(backward(32, 32, 4096), {64, 128, 8, 2, false}, 132);
    CHECK(l.num_m_blocks == 64);
    CHECK(l.num_n_blocks == 32);
    CHECK(l.kv_splits == 1);
    CHECK(l.dsum_floats == 32 * 4096);
    CHECK(l.dq_accum_floats == int64_t(32) * 4096 * 128);
    CHECK(l.dkv_partial_floats == 0);
    CHECK(l.dq_smem == 0);
    CHECK(l.workspace_bytes() == size_t(32 * 4096 + 32 * 4096 * 128) * 4);
  }

  TEST_CASE(
      "warp-specialized: the dQ accumulator in whole 64-row tiles, read by the tiled kernel") {
    const TileConfig ws{64, 128, 12, 3, false, true, true};
    const codegen::BackwardLayout l = codegen::backward_layout(backward(32, 32, 1000), ws, 132);
    CHECK(l.dq_tiled);
    CHECK(l.dq_accum_floats == int64_t(32) * 1024 * 128); // 1000 rows padded to 16 tiles
    CHECK_FALSE(codegen::backward_layout(backward(32, 32, 1000), {64, 128, 8, 2, false, true}, 132)
                    .dq_tiled);
    const codegen::GeneratedKernel k = codegen::generate_backward(backward(32, 32, 1000).spec, ws);
    CHECK(k.helper_name_expressions[1] ==
          "attnjit::flash_bwd_dq_tiled_kernel<attnjit::bf16_t, 128, 64>");
  }

  TEST_CASE("MQA: the group splits over CTAs to fill whole waves, with fp32 dK/dV partials") {
    // 32 key blocks x 1 KV head = 32 CTAs, one per SM (8 warps): 4 splits give 128 CTAs, one
    // wave of 8 heads each; 8, 16 or 32 splits take as long (2 waves x 4 heads, ...) with more
    // partials.
    const codegen::BackwardLayout l =
        codegen::backward_layout(backward(32, 1, 4096), {64, 128, 8, 2, false}, 132);
    CHECK(l.kv_splits == 4);
    CHECK(l.dkv_partial_floats == int64_t(4) * 4096 * 256);
    // 64 key blocks of 4 warps, two CTAs per SM: 4 splits give 256 CTAs, one wave of 264 slots.
    CHECK(codegen::backward_layout(backward(32, 1, 4096), {64, 64, 4, 2, false}, 132).kv_splits ==
          4);
    // MQA H=40 S=2048: 16 key blocks; 8 splits fill one wave (128 CTAs), 20 took three.
    CHECK(codegen::backward_layout(backward(40, 1, 2048), {64, 128, 8, 2, false}, 132).kv_splits ==
          8);
    // Causal: early key blocks carry most of the work, so smaller pieces balance better.
    AttentionProblem causal = backward(40, 1, 2048);
    causal.spec.mask = Mask::causal;
    CHECK(codegen::backward_layout(causal, {64, 128, 8, 2, false}, 132).kv_splits >= 20);
    // MHA never splits; GQA 32/8 at S=4096 already has 256 CTAs.
    CHECK(codegen::backward_layout(backward(32, 32, 4096), {64, 128, 8, 2, false}, 132).kv_splits ==
          1);
    CHECK(codegen::backward_layout(backward(32, 8, 4096), {64, 128, 8, 2, false}, 132).kv_splits ==
          1);
  }

  TEST_CASE("causal: groups walk their key blocks in chunks that keep Q, dO and dQ in L2") {
    // B=1 S=2048 H=128 d128: 2 MiB of Q, dO and fp32 dQ rows per head; 64 MiB take 32 heads.
    AttentionProblem causal = backward(128, 128, 2048);
    causal.spec.mask = Mask::causal;
    const TileConfig config{64, 128, 12, 2, false, true, true};
    CHECK(codegen::backward_layout(causal, config, 132).causal_chunk == 32);
    // Deterministic: no dQ accumulator, so 1 MiB per head.
    causal.spec.deterministic = true;
    CHECK(codegen::backward_layout(causal, config, 132).causal_chunk == 64);
    // Up to 1.5 chunks of rows (H=40: 80 MiB) stay one chunk of every group.
    AttentionProblem h40 = backward(40, 40, 2048);
    h40.spec.mask = Mask::causal;
    CHECK(codegen::backward_layout(h40, config, 132).causal_chunk == 40);
    AttentionProblem small = backward(8, 8, 1000);
    small.spec.mask = Mask::causal;
    CHECK(codegen::backward_layout(small, config, 132).causal_chunk == 8);
    // GQA 32/8 at S=4096, 4 MiB per head: whatever split the launch takes, a chunk holds 64 MiB.
    AttentionProblem gqa = backward(32, 8, 4096);
    gqa.spec.mask = Mask::causal;
    const codegen::BackwardLayout l = codegen::backward_layout(gqa, config, 132);
    CHECK(l.causal_chunk * (4 / l.kv_splits) == 16);
  }

  TEST_CASE("the D pre-pass zeroes every row of the dQ accumulator the main kernel adds to") {
    const auto rows = [](const AttentionProblem& p, const TileConfig& c) {
      const codegen::BackwardLayout l = codegen::backward_layout(p, c, 132);
      const BwdParams params = codegen::backward_params(p, l, BackwardArgs{});
      // The pre-pass's blocks cover ceil(Sq / 128) * 128 rows of each (batch, head).
      CHECK(params.dq_accum_rows <= (p.shape.seqlen_q + 127) / 128 * 128);
      CHECK(int64_t(params.dq_accum_rows) * p.spec.num_heads * p.spec.head_dim_qk ==
            l.dq_accum_floats);
      return params.dq_accum_rows;
    };
    CHECK(rows(backward(8, 8, 1000), {64, 128, 8, 2, false}) == 1000);
    CHECK(rows(backward(8, 8, 1000), {64, 128, 12, 3, false, true, true}) == 1024); // whole tiles
    CHECK(rows(backward(8, 8, 1025), {64, 128, 12, 3, false, true, true}) == 1088);
    AttentionProblem det = backward(8, 8, 1000);
    det.spec.deterministic = true;
    CHECK(rows(det, {64, 128, 8, 2, false}) == 0);

    // The warp-specialized kernel's per-(batch, KV head) counters close the workspace.
    AttentionProblem gqa = backward(8, 2, 1000);
    gqa.shape.batch = 3;
    const TileConfig ws{64, 128, 12, 3, false, true, true};
    const codegen::BackwardLayout l = codegen::backward_layout(gqa, ws, 132);
    CHECK(l.kv_done_words == 8); // 3 x 2, padded to whole 16 bytes
    const BwdParams params = codegen::backward_params(gqa, l, BackwardArgs{});
    CHECK(reinterpret_cast<const float*>(params.kv_done) ==
          params.dsum + l.dsum_floats + l.dq_accum_floats + l.dkv_partial_floats);
    CHECK(l.workspace_bytes() ==
          size_t(l.dsum_floats + l.dq_accum_floats + l.dkv_partial_floats + 8) * 4);
    CHECK(codegen::backward_layout(gqa, {64, 128, 8, 2, false}, 132).kv_done_words == 0);
    CHECK(
        codegen::generate_backward(backward(8, 2, 1000, 64).spec, {64, 64, 8, 3, false, true, true})
            .helper_name_expressions[0] ==
        "attnjit::flash_bwd_dsum_kernel<attnjit::bf16_t, 64, 64>");
  }

  TEST_CASE("deterministic: no dQ accumulator; the dQ kernel's shared memory") {
    AttentionProblem p = backward(8, 8, 1000);
    p.spec.deterministic = true;
    const codegen::BackwardLayout l = codegen::backward_layout(p, {64, 128, 8, 2, false}, 132);
    CHECK(l.dq_accum_floats == 0);
    CHECK(l.dsum_floats == 8 * 1000);
    CHECK(l.dq_smem == codegen::backward_dq_smem_bytes(p.spec));
  }

  TEST_CASE("a grid past the launch limit is refused by name") {
    AttentionProblem p = backward(64, 64, 4096);
    p.shape.batch = int64_t(1) << 20;
    CHECK_THROWS_WITH_AS(codegen::backward_layout(p, {64, 128, 8, 2, false}, 132),
                         doctest::Contains("over the grid limit"), Error);
  }
}

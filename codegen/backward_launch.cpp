#include "codegen/backward_launch.h"

#include "codegen/plan_kernel.h"
#include "codegen/tensor_maps.h"
#include "codegen/tile_rules.h"
#include "runtime/driver.h"

#include <algorithm>
#include <queue>
#include <utility>
#include <vector>

namespace attnjit::codegen {
namespace {

// The workspace holds D ([B, H, Sq] fp32, padded to 16 bytes), the dQ accumulator, then the
// GQA/MQA dK/dV partials when the group is split.
int64_t padded_to_4(int64_t n) {
  return (n + 3) / 4 * 4;
}

// Causal: how many (split, batch, KV head) groups walk their key blocks heaviest first together.
// With one chunk of every group the CTAs running at once read the Q and dO rows, and add to the
// fp32 dQ rows, of every head: at B=1 S=2048 H=128 d128 (256 MiB of rows) that thrashed L2 and
// the causal backward took as long as the non-causal one (200 TFLOP/s). Measured on the H100
// (docs/PERF.md, session 5) with chunks of 16, 32 and 64 MiB of rows: 64 gave H=128 289 and
// GQA 32/8 S=4096 378 (all-in-one: 366); 16 cost d64 B=2 H=12 12% and H=40 S=2048 lost 4% at
// every size, so a grid of up to 1.5 chunks stays one chunk.
constexpr int64_t kCausalChunkBytes = int64_t(64) << 20;

int64_t causal_chunk_for(const AttentionProblem& problem, int kv_splits) {
  const auto& s = problem.spec;
  const auto& sh = problem.shape;
  const int64_t groups = int64_t(sh.batch) * s.num_kv_heads * kv_splits;
  const int64_t heads = s.num_heads / s.num_kv_heads / kv_splits;
  const int64_t per_head = sh.seqlen_q * ((s.head_dim_qk + s.head_dim_v) * 2 +
                                          (s.deterministic ? 0 : s.head_dim_qk * 4));
  const int64_t per_group = std::max<int64_t>(1, heads * per_head);
  if (groups * per_group * 2 <= kCausalChunkBytes * 3) return std::max<int64_t>(1, groups);
  return std::clamp<int64_t>(kCausalChunkBytes / per_group, 1, std::max<int64_t>(1, groups));
}

// With few KV heads one CTA per (key block, KV head) leaves most SMs idle (MQA at S=4096 has 32
// CTAs for 132 SMs), so the group's query heads are split over more CTAs, whose fp32 dK/dV
// partials are then summed. The split is chosen by simulating the launch: CTAs in blockIdx order
// go to the first free slot, each taking (query heads per CTA) x (its query blocks) steps plus
// one for loading K/V and writing; the split with the shortest makespan wins, and a split within
// 3% of it that is smaller wins instead (fewer partials to write and sum). Slots per SM: 8
// computing warps fill one (about 255 registers per thread, or 240 plus a loading warpgroup).
// The first rule, "at least two CTAs per SM", gave MQA H=40 S=2048 d128 20 splits: 320 CTAs on
// 132 SMs, three waves of which the last is 40% full (195 TFLOP/s; 8 splits fill one wave: 234).
// Causal key blocks differ in work, which a wave count misses: one wave of 8 splits ran 20% slower
// than 20 splits there, and the simulation sees it.
int kv_splits_for(const AttentionProblem& problem, const TileConfig& config, int num_m_blocks,
                  int num_n_blocks, int sm_count) {
  const auto& s = problem.spec;
  const auto& sh = problem.shape;
  const int heads_per_kv = s.num_heads / s.num_kv_heads;
  if (heads_per_kv == 1 || num_n_blocks == 0) return 1;
  const int64_t groups = int64_t(sh.batch) * s.num_kv_heads;
  const int slots = std::max(1, sm_count) * std::max(1, 8 / std::max(1, computing_warps(config)));
  const int64_t diag = sh.seqlen_k - sh.seqlen_q;
  auto query_blocks = [&](int n_block) -> int64_t { // as flash_bwd_dkdv_kernel walks them
    if (s.mask != Mask::causal) return num_m_blocks;
    const int64_t m_begin =
        std::max<int64_t>(0, n_block * int64_t(config.block_n) - diag) / config.block_m;
    return std::max<int64_t>(0, num_m_blocks - m_begin);
  };
  auto makespan = [&](int split) {
    std::priority_queue<int64_t, std::vector<int64_t>, std::greater<>> free_at;
    for (int i = 0; i < slots; ++i)
      free_at.push(0);
    int64_t end = 0;
    auto run_cta = [&](int n) {
      const int64_t t = free_at.top() + (heads_per_kv / split) * query_blocks(n) + 1;
      free_at.pop();
      free_at.push(t);
      end = std::max(end, t);
    };
    // In flash_bwd_dkdv_kernel's blockIdx order: key blocks slowest within a chunk when causal.
    if (s.mask == Mask::causal) {
      const int64_t chunk = causal_chunk_for(problem, split);
      for (int64_t first = 0; first < groups * split; first += chunk)
        for (int n = 0; n < num_n_blocks; ++n)
          for (int64_t g = first; g < std::min(groups * split, first + chunk); ++g)
            run_cta(n);
    } else
      for (int64_t g = 0; g < groups * split; ++g)
        for (int n = 0; n < num_n_blocks; ++n)
          run_cta(n);
    return end;
  };
  std::vector<std::pair<int, int64_t>> costs; // (split, makespan)
  int64_t best = 0;
  for (int split = 1; split <= heads_per_kv; ++split) {
    if (heads_per_kv % split != 0) continue;
    costs.emplace_back(split, makespan(split));
    if (costs.size() == 1 || costs.back().second < best) best = costs.back().second;
  }
  for (const auto& [split, cost] : costs) // smallest first
    if (cost * 100 <= best * 103) return split;
  return heads_per_kv;
}

void set_strides(attnjit_i64& batch, attnjit_i64& seq, attnjit_i64& head, const TensorView& view) {
  batch = view.batch_stride, seq = view.seq_stride, head = view.head_stride;
}

} // namespace

BackwardLayout backward_layout(const AttentionProblem& problem, const TileConfig& config,
                               int sm_count) {
  const auto& s = problem.spec;
  const auto& sh = problem.shape;
  BackwardLayout m;
  m.num_m_blocks = grid_blocks(sh.seqlen_q, config.block_m, 1, problem);
  m.num_n_blocks = grid_blocks(sh.seqlen_k, config.block_n, sh.batch * s.num_kv_heads, problem);
  grid_blocks(sh.seqlen_q, 128, sh.batch * s.num_heads, problem); // the D pre-pass
  m.kv_splits = kv_splits_for(problem, config, m.num_m_blocks, m.num_n_blocks, sm_count);
  m.causal_chunk = int(causal_chunk_for(problem, m.kv_splits));
  m.dkv_partial_floats = m.kv_splits == 1 ? 0
                                          : m.kv_splits * sh.batch * s.num_kv_heads * sh.seqlen_k *
                                                (s.head_dim_qk + s.head_dim_v);
  m.dsum_floats = padded_to_4(sh.batch * s.num_heads * sh.seqlen_q);
  m.dq_tiled = config.warp_specialized && !s.deterministic;
  m.dq_accum_rows = s.deterministic ? 0
                    : m.dq_tiled    ? int((sh.seqlen_q + 63) / 64 * 64)
                                    : int(sh.seqlen_q);
  m.dq_accum_floats = sh.batch * s.num_heads * int64_t(m.dq_accum_rows) * s.head_dim_qk;
  m.kv_done_words = m.dq_tiled ? padded_to_4(sh.batch * s.num_kv_heads) : 0;
  if (s.deterministic) {
    grid_blocks(sh.seqlen_q, 64, sh.batch * s.num_heads, problem);
    m.dq_smem = backward_dq_smem_bytes(s);
  }
  return m;
}

CUresult prepare_backward_kernels(const BackwardKernels& kernels, const BackwardLayout& layout) {
  if (layout.dq_smem == 0) return CUDA_SUCCESS;
  return runtime::driver().cuFuncSetAttribute(
      kernels.dq, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, layout.dq_smem);
}

BwdParams backward_params(const AttentionProblem& problem, const BackwardLayout& m,
                          const BackwardArgs& a) {
  const auto& s = problem.spec;
  const auto& sh = problem.shape;
  BwdParams p{};
  p.q = a.q.data, p.k = a.k.data, p.v = a.v.data, p.o = a.o.data, p.dout = a.dout.data;
  p.lse = a.lse;
  p.dq = const_cast<void*>(a.dq.data), p.dk = const_cast<void*>(a.dk.data);
  p.dv = const_cast<void*>(a.dv.data);
  p.dsum = static_cast<float*>(a.workspace);
  p.dq_accum = p.dsum + m.dsum_floats;
  p.dkv_partial = p.dq_accum + m.dq_accum_floats;
  p.kv_done = m.kv_done_words == 0
                  ? nullptr
                  : reinterpret_cast<unsigned*>(p.dkv_partial + m.dkv_partial_floats);
  p.kv_splits = m.kv_splits;
  set_strides(p.q_batch_stride, p.q_seq_stride, p.q_head_stride, a.q);
  set_strides(p.k_batch_stride, p.k_seq_stride, p.k_head_stride, a.k);
  set_strides(p.v_batch_stride, p.v_seq_stride, p.v_head_stride, a.v);
  set_strides(p.o_batch_stride, p.o_seq_stride, p.o_head_stride, a.o);
  set_strides(p.do_batch_stride, p.do_seq_stride, p.do_head_stride, a.dout);
  set_strides(p.dq_batch_stride, p.dq_seq_stride, p.dq_head_stride, a.dq);
  set_strides(p.dk_batch_stride, p.dk_seq_stride, p.dk_head_stride, a.dk);
  set_strides(p.dv_batch_stride, p.dv_seq_stride, p.dv_head_stride, a.dv);
  p.batch = int(sh.batch);
  p.num_heads = s.num_heads;
  p.num_kv_heads = s.num_kv_heads;
  p.heads_per_kv = s.num_heads / s.num_kv_heads;
  p.seqlen_q = int(sh.seqlen_q);
  p.seqlen_k = int(sh.seqlen_k);
  p.num_m_blocks = m.num_m_blocks;
  p.num_n_blocks = m.num_n_blocks;
  p.causal_chunk = m.causal_chunk;
  p.dq_accum_rows = m.dq_accum_rows;
  p.softmax_scale = effective_softmax_scale(problem);
  p.softmax_scale_log2 = p.softmax_scale * 1.4426950408889634f;
  return p;
}

LaunchStatus enqueue_backward(const BackwardKernels& kernels, const AttentionProblem& problem,
                              const BackwardLayout& m, const BackwardArgs& backward_args,
                              CUstream stream) {
  const runtime::DriverApi& api = runtime::driver();
  const auto& s = problem.spec;
  const auto& sh = problem.shape;
  BwdParams params = backward_params(problem, m, backward_args);
  BwdTmaParams tma{};
  if (kernels.config.warp_specialized)
    tma = backward_tensor_maps(problem, kernels.config, backward_args);
  void* args[] = {&params, &tma}; // every kernel but the warp-specialized one reads only the first
  // The first kernel waits for the stream as usual; each later one may start while the one
  // before it finishes. Measured at d128 S2048 H40: the memset, the D pre-pass and the dQ
  // conversion around the 419 us main kernel took 74 us in all (docs/PERF.md, session 9).
  CUlaunchAttribute overlap{};
  overlap.id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
  overlap.value.programmaticStreamSerializationAllowed = 1;
  bool first = true;
  const auto launch = [&](CUfunction f, int64_t blocks, int threads, int smem) {
    CUlaunchConfig c{};
    c.gridDimX = unsigned(blocks), c.gridDimY = 1, c.gridDimZ = 1;
    c.blockDimX = unsigned(threads), c.blockDimY = 1, c.blockDimZ = 1;
    c.sharedMemBytes = unsigned(smem);
    c.hStream = stream;
    c.attrs = &overlap;
    c.numAttrs = kernels.overlap_launches && !first ? 1 : 0;
    first = false;
    return api.cuLaunchKernelEx(&c, f, args, nullptr);
  };
  CUresult r = CUDA_SUCCESS;
  const int64_t dsum_blocks = (sh.seqlen_q + 127) / 128 * sh.batch * s.num_heads;
  if ((r = launch(kernels.dsum, dsum_blocks, 128, 0)) != CUDA_SUCCESS)
    return {r, "cuLaunchKernelEx(D pre-pass and dQ accumulator reset)"};
  if (sh.seqlen_k > 0) {
    const int64_t blocks = int64_t(m.num_n_blocks) * sh.batch * s.num_kv_heads * m.kv_splits;
    if ((r = launch(kernels.dkdv, blocks, kernels.threads, kernels.dynamic_smem)) != CUDA_SUCCESS)
      return {r, "cuLaunchKernelEx(dK/dV kernel)"};
  }
  if (m.kv_splits > 1 && sh.seqlen_k > 0) {
    const int64_t chunks =
        sh.batch * s.num_kv_heads * sh.seqlen_k * (s.head_dim_qk + s.head_dim_v) / 8;
    if ((r = launch(kernels.reduce, std::clamp<int64_t>((chunks + 255) / 256, 1, 4096), 256, 0)) !=
        CUDA_SUCCESS)
      return {r, "cuLaunchKernelEx(dK/dV reduction)"};
  }
  if (s.deterministic) {
    const int64_t blocks = (sh.seqlen_q + 63) / 64 * sh.batch * s.num_heads;
    if ((r = launch(kernels.dq, blocks, 128, m.dq_smem)) != CUDA_SUCCESS)
      return {r, "cuLaunchKernelEx(deterministic dQ kernel)"};
    return {};
  }
  // Grid-stride: enough blocks to fill any GPU, never more than the work (a thread's share:
  // 8 columns of a row, or of two rows when tiled).
  const int64_t chunks = m.dq_tiled ? m.dq_accum_floats / 16 : m.dq_accum_floats / 8;
  if ((r = launch(kernels.dq, std::clamp<int64_t>((chunks + 255) / 256, 1, 4096), 256, 0)) !=
      CUDA_SUCCESS)
    return {r, "cuLaunchKernelEx(dQ conversion)"};
  return {};
}

} // namespace attnjit::codegen

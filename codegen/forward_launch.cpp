#include "codegen/forward_launch.h"

#include "codegen/tensor_maps.h"
#include "codegen/tile_rules.h"
#include "runtime/driver.h"

#include <attnjit/fwd_params.h>

#include <algorithm>

namespace attnjit::codegen {

int causal_head_groups(const AttentionProblem& problem, long long l2_bytes) {
  const KernelSpec& s = problem.spec;
  const int64_t pairs = std::max<int64_t>(1, problem.shape.batch * s.num_heads);
  const int64_t v_cols = s.layout == Layout::v_in_k ? 0 : s.head_dim_v;
  // A query head's share of its KV head's K and V (GQA's group reads them once).
  const int64_t kv_bytes = std::max<int64_t>(1, problem.shape.seqlen_k * (s.head_dim_qk + v_cols) *
                                                    2 / (s.num_heads / s.num_kv_heads));
  const int64_t most = std::clamp<int64_t>(l2_bytes / 4 / kv_bytes, 1, pairs);
  return int((pairs + most - 1) / most);
}

static FwdParams forward_params(const AttentionProblem& problem, int num_m_blocks,
                                long long l2_bytes, const ForwardArgs& args) {
  const KernelSpec& s = problem.spec;
  const AttentionShape& sh = problem.shape;
  FwdParams p{};
  p.q = args.q.data, p.k = args.k.data, p.v = args.v.data;
  p.o = const_cast<void*>(args.o.data);
  p.lse = args.lse;
  p.q_batch_stride = args.q.batch_stride, p.q_seq_stride = args.q.seq_stride;
  p.q_head_stride = args.q.head_stride;
  p.k_batch_stride = args.k.batch_stride, p.k_seq_stride = args.k.seq_stride;
  p.k_head_stride = args.k.head_stride;
  p.v_batch_stride = args.v.batch_stride, p.v_seq_stride = args.v.seq_stride;
  p.v_head_stride = args.v.head_stride;
  p.o_batch_stride = args.o.batch_stride, p.o_seq_stride = args.o.seq_stride;
  p.o_head_stride = args.o.head_stride;
  p.batch = int(sh.batch);
  p.num_heads = s.num_heads;
  p.heads_per_kv = s.num_heads / s.num_kv_heads;
  p.seqlen_q = int(sh.seqlen_q);
  p.seqlen_k = int(sh.seqlen_k);
  p.num_m_blocks = num_m_blocks;
  p.causal_groups = s.mask == Mask::causal ? causal_head_groups(problem, l2_bytes) : 1;
  p.softmax_scale = effective_softmax_scale(problem);
  p.softmax_scale_log2 = p.softmax_scale * 1.4426950408889634f;
  return p;
}

int resident_ctas(CUfunction function, int threads, int dynamic_smem, int sm_count) {
  int per_sm = 0;
  runtime::check(runtime::driver().cuOccupancyMaxActiveBlocksPerMultiprocessor(
                     &per_sm, function, threads, size_t(dynamic_smem)),
                 "cuOccupancyMaxActiveBlocksPerMultiprocessor");
  return per_sm * sm_count;
}

CUresult enqueue_forward(const ForwardLaunch& launch, const AttentionProblem& problem,
                         const ForwardArgs& args, CUstream stream) {
  const AttentionShape& sh = problem.shape;
  const int64_t m_blocks = (sh.seqlen_q + launch.config.block_m - 1) / launch.config.block_m;
  FwdParams p = forward_params(problem, int(m_blocks), launch.l2_bytes, args);
  FwdTmaParams tma{};
  if (launch.config.warp_specialized) tma = forward_tensor_maps(problem, launch.config, args);
  void* kernel_args[] = {&p, &tma}; // the kernels without tensor maps read only the first
  unsigned grid = unsigned(m_blocks * sh.batch * problem.spec.num_heads);
  if (forward_walks_tiles(problem.spec, launch.config) && launch.resident_ctas > 0)
    grid = std::min(grid, unsigned(launch.resident_ctas));
  return runtime::driver().cuLaunchKernel(launch.function, grid, 1, 1, unsigned(launch.threads), 1,
                                          1, unsigned(launch.dynamic_smem), stream, kernel_args,
                                          nullptr);
}

} // namespace attnjit::codegen

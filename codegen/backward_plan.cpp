#include <attnjit/error.h>
#include <attnjit/plan.h>

#include "codegen/argument_checks.h"
#include "codegen/plan_kernel.h"
#include "codegen/tile_rules.h"
#include "runtime/driver.h"

#include <attnjit/bwd_params.h>

#include <fmt/format.h>

#include <algorithm>

namespace attnjit {

struct BackwardPlan::Impl {
  AttentionProblem problem;
  int device = 0;
  codegen::PlanKernel plan;
  int num_m_blocks = 0, num_n_blocks = 0;
  int64_t dsum_floats = 0, dq_accum_floats = 0;
  int dq_smem = 0; // deterministic dQ kernel
  int kv_splits = 1;
  int64_t dkv_partial_floats = 0;
};

// The workspace holds D ([B, H, Sq] fp32, padded to 16 bytes), the dQ accumulator, then the
// GQA/MQA dK/dV partials when the group is split.
static int64_t padded_to_4(int64_t n) {
  return (n + 3) / 4 * 4;
}

// With few KV heads one CTA per (key block, KV head) leaves most SMs idle (MQA at S=4096 has 32
// CTAs for 132 SMs), so the group's query heads are split over more CTAs: the smallest divisor
// of heads_per_kv that gives two CTAs per SM. Their fp32 dK/dV partials are then summed.
static int kv_splits_for(const AttentionProblem& problem, int num_n_blocks, int sm_count) {
  const auto& s = problem.spec;
  const int heads_per_kv = s.num_heads / s.num_kv_heads;
  const int64_t ctas = int64_t(num_n_blocks) * problem.shape.batch * s.num_kv_heads;
  for (int split = 1; split < heads_per_kv; ++split)
    if (heads_per_kv % split == 0 && ctas * split >= 2 * int64_t(sm_count)) return split;
  return heads_per_kv;
}

BackwardPlan::BackwardPlan(const AttentionProblem& problem, std::optional<TileConfig> config,
                           int device)
    : impl_(std::make_unique<Impl>()) {
  if (problem.spec.pass != Pass::backward)
    throw Error(ErrorKind::invalid_argument,
                fmt::format("BackwardPlan needs a backward spec (pass = bwd), got {}",
                            to_string(problem.spec)));
  Impl& m = *impl_;
  m.problem = problem;
  m.device = device;
  m.plan = codegen::prepare_plan_kernel(problem, config, device);
  const auto& s = problem.spec;
  const auto& sh = problem.shape;
  m.num_m_blocks = codegen::grid_blocks(sh.seqlen_q, m.plan.config.block_m, 1, problem);
  m.num_n_blocks =
      codegen::grid_blocks(sh.seqlen_k, m.plan.config.block_n, sh.batch * s.num_kv_heads, problem);
  codegen::grid_blocks(sh.seqlen_q, 128, sh.batch * s.num_heads, problem); // the D pre-pass
  m.kv_splits = kv_splits_for(problem, m.num_n_blocks, m.plan.device.sm_count);
  m.dkv_partial_floats = m.kv_splits == 1 ? 0
                                          : m.kv_splits * sh.batch * s.num_kv_heads * sh.seqlen_k *
                                                (s.head_dim_qk + s.head_dim_v);
  m.dsum_floats = padded_to_4(sh.batch * s.num_heads * sh.seqlen_q);
  m.dq_accum_floats = s.deterministic ? 0 : sh.batch * s.num_heads * sh.seqlen_q * s.head_dim_qk;
  if (s.deterministic) {
    codegen::grid_blocks(sh.seqlen_q, 64, sh.batch * s.num_heads, problem);
    m.dq_smem = codegen::backward_dq_smem_bytes(s);
    runtime::use_device(device);
    ATTNJIT_CU(cuFuncSetAttribute(m.plan.kernel->functions[2],
                                  CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, m.dq_smem));
  }
}

BackwardPlan::~BackwardPlan() = default;
BackwardPlan::BackwardPlan(BackwardPlan&&) noexcept = default;
BackwardPlan& BackwardPlan::operator=(BackwardPlan&&) noexcept = default;

const AttentionProblem& BackwardPlan::problem() const {
  return impl_->problem;
}
const TileConfig& BackwardPlan::config() const {
  return impl_->plan.config;
}
size_t BackwardPlan::workspace_bytes() const {
  return size_t(impl_->dsum_floats + impl_->dq_accum_floats + impl_->dkv_partial_floats) * 4;
}
std::optional<cache::LookupSource> BackwardPlan::config_source() const {
  return impl_->plan.config_source;
}
bool BackwardPlan::binary_from_cache() const {
  return impl_->plan.binary_from_cache;
}
const std::vector<std::string>& BackwardPlan::cache_warnings() const {
  return impl_->plan.cache_warnings;
}
int BackwardPlan::registers_per_thread() const {
  return impl_->plan.kernel->registers;
}
int BackwardPlan::shared_memory_bytes() const {
  return impl_->plan.kernel->static_smem + impl_->plan.kernel->dynamic_smem;
}
int BackwardPlan::local_memory_bytes() const {
  return impl_->plan.kernel->local_bytes;
}

namespace {

void check_arguments(const AttentionProblem& problem, const BackwardArgs& a, size_t workspace) {
  using codegen::ViewExtent;
  const auto& s = problem.spec;
  const auto& sh = problem.shape;
  const std::array<int64_t, 3> q_sizes{sh.batch, sh.seqlen_q, s.num_heads};
  const std::array<int64_t, 3> kv_sizes{sh.batch, sh.seqlen_k, s.num_kv_heads};
  const ViewExtent q{"q", a.q, q_sizes, s.head_dim_qk}, k{"k", a.k, kv_sizes, s.head_dim_qk},
      v{"v", a.v, kv_sizes, s.head_dim_v}, o{"o", a.o, q_sizes, s.head_dim_v},
      dout{"dout", a.dout, q_sizes, s.head_dim_v}, dq{"dq", a.dq, q_sizes, s.head_dim_qk},
      dk{"dk", a.dk, kv_sizes, s.head_dim_qk}, dv{"dv", a.dv, kv_sizes, s.head_dim_v};
  for (const ViewExtent* e : {&q, &k, &v, &o, &dout, &dq, &dk, &dv})
    codegen::check_view(*e);
  codegen::check_pointer("lse", a.lse, 4);
  codegen::check_pointer("workspace", a.workspace, 16);
  if (a.workspace_bytes < workspace)
    throw Error(ErrorKind::invalid_argument,
                fmt::format("workspace has {} bytes, the plan needs {} (workspace_bytes())",
                            a.workspace_bytes, workspace));
  const codegen::ByteRange lse =
      codegen::fp32_range("lse", a.lse, sh.batch * s.num_heads * sh.seqlen_q);
  const auto ws0 = reinterpret_cast<uintptr_t>(a.workspace);
  const codegen::ByteRange ws{"workspace", ws0, ws0 + workspace};
  codegen::check_disjoint(lse, ws);
  for (const ViewExtent* out : {&dq, &dk, &dv}) {
    codegen::check_no_self_overlap(*out);
    for (const ViewExtent* other : {&q, &k, &v, &o, &dout, &dq, &dk, &dv})
      if (other != out) codegen::check_disjoint(*out, *other);
    codegen::check_disjoint(*out, lse);
    codegen::check_disjoint(*out, ws);
  }
  for (const ViewExtent* in : {&q, &k, &v, &o, &dout})
    codegen::check_disjoint(*in, ws);
}

void set_strides(attnjit_i64& batch, attnjit_i64& seq, attnjit_i64& head, const TensorView& view) {
  batch = view.batch_stride, seq = view.seq_stride, head = view.head_stride;
}

} // namespace

void BackwardPlan::run(const BackwardArgs& a, Stream stream) const {
  const Impl& m = *impl_;
  const auto& s = m.problem.spec;
  const auto& sh = m.problem.shape;
  check_arguments(m.problem, a, workspace_bytes());

  BwdParams p{};
  p.q = a.q.data, p.k = a.k.data, p.v = a.v.data, p.o = a.o.data, p.dout = a.dout.data;
  p.lse = a.lse;
  p.dq = const_cast<void*>(a.dq.data), p.dk = const_cast<void*>(a.dk.data);
  p.dv = const_cast<void*>(a.dv.data);
  p.dsum = static_cast<float*>(a.workspace);
  p.dq_accum = p.dsum + m.dsum_floats;
  p.dkv_partial = p.dq_accum + m.dq_accum_floats;
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
  p.softmax_scale = effective_softmax_scale(m.problem);
  p.softmax_scale_log2 = p.softmax_scale * 1.4426950408889634f;

  runtime::make_current(m.plan.context); // no allocation: run() is graph-capturable
  const auto cu_stream = reinterpret_cast<CUstream>(stream);
  const auto& functions = m.plan.kernel->functions; // main, D pre-pass, dQ conversion
  void* args[] = {&p};
  if (!s.deterministic)
    ATTNJIT_CU(cuMemsetD32Async(reinterpret_cast<CUdeviceptr>(p.dq_accum), 0,
                                size_t(m.dq_accum_floats), cu_stream));
  const int64_t dsum_blocks = (sh.seqlen_q + 127) / 128 * sh.batch * s.num_heads;
  ATTNJIT_CU(cuLaunchKernel(functions[1], unsigned(dsum_blocks), 1, 1, 128, 1, 1, 0, cu_stream,
                            args, nullptr));
  if (sh.seqlen_k > 0) {
    const int64_t blocks = int64_t(m.num_n_blocks) * sh.batch * s.num_kv_heads * m.kv_splits;
    ATTNJIT_CU(cuLaunchKernel(functions[0], unsigned(blocks), 1, 1, m.plan.generated.threads, 1, 1,
                              m.plan.generated.dynamic_smem, cu_stream, args, nullptr));
  }
  if (m.kv_splits > 1 && sh.seqlen_k > 0) {
    const int64_t chunks =
        sh.batch * s.num_kv_heads * sh.seqlen_k * (s.head_dim_qk + s.head_dim_v) / 8;
    const int64_t blocks = std::clamp<int64_t>((chunks + 255) / 256, 1, 4096);
    ATTNJIT_CU(cuLaunchKernel(functions[3], unsigned(blocks), 1, 1, 256, 1, 1, 0, cu_stream, args,
                              nullptr));
  }
  if (s.deterministic) {
    const int64_t blocks = (sh.seqlen_q + 63) / 64 * sh.batch * s.num_heads;
    ATTNJIT_CU(cuLaunchKernel(functions[2], unsigned(blocks), 1, 1, 128, 1, 1, m.dq_smem, cu_stream,
                              args, nullptr));
    return;
  }
  // Grid-stride: enough blocks to fill any GPU, never more than the work.
  const int64_t chunks = sh.batch * s.num_heads * sh.seqlen_q * s.head_dim_qk / 8;
  const int64_t dq_blocks = std::clamp<int64_t>((chunks + 255) / 256, 1, 4096);
  ATTNJIT_CU(cuLaunchKernel(functions[2], unsigned(dq_blocks), 1, 1, 256, 1, 1, 0, cu_stream, args,
                            nullptr));
}

} // namespace attnjit

#include <attnjit/device.h>
#include <attnjit/error.h>
#include <attnjit/plan.h>

#include "codegen/argument_checks.h"
#include "codegen/plan_kernel.h"
#include "codegen/tensor_maps.h"
#include "runtime/driver.h"

#include <attnjit/fwd_params.h>

#include <fmt/format.h>

namespace attnjit {

TensorView contiguous_bshd(const void* data, int64_t seqlen, int64_t heads, int64_t head_dim) {
  return {data, seqlen * heads * head_dim, heads * head_dim, head_dim};
}

struct ForwardPlan::Impl {
  AttentionProblem problem;
  int device = 0;
  codegen::PlanKernel plan;
  int num_m_blocks = 0;
};

ForwardPlan::ForwardPlan(const AttentionProblem& problem, std::optional<TileConfig> config,
                         int device)
    : ForwardPlan(problem, config, PlanOptions{device, {}}) {}

ForwardPlan::ForwardPlan(const AttentionProblem& problem, const PlanOptions& options)
    : ForwardPlan(problem, std::nullopt, options) {}

ForwardPlan::ForwardPlan(const AttentionProblem& problem, std::optional<TileConfig> config,
                         const PlanOptions& options)
    : impl_(std::make_unique<Impl>()) {
  if (problem.spec.pass != Pass::forward)
    throw Error(ErrorKind::invalid_argument,
                fmt::format("ForwardPlan needs a forward spec, got {}", to_string(problem.spec)));
  Impl& m = *impl_;
  m.problem = problem;
  m.device = options.device;
  m.plan = codegen::prepare_plan_kernel(problem, config, options);
  m.num_m_blocks = codegen::grid_blocks(problem.shape.seqlen_q, m.plan.config.block_m,
                                        problem.shape.batch * problem.spec.num_heads, problem);
}

ForwardPlan::~ForwardPlan() = default;
ForwardPlan::ForwardPlan(ForwardPlan&&) noexcept = default;
ForwardPlan& ForwardPlan::operator=(ForwardPlan&&) noexcept = default;

const AttentionProblem& ForwardPlan::problem() const {
  return impl_->problem;
}
const TileConfig& ForwardPlan::config() const {
  return impl_->plan.config;
}
std::optional<cache::LookupSource> ForwardPlan::config_source() const {
  return impl_->plan.config_source;
}
bool ForwardPlan::binary_from_cache() const {
  return impl_->plan.binary_from_cache;
}
const std::vector<std::string>& ForwardPlan::cache_warnings() const {
  return impl_->plan.cache_warnings;
}
int ForwardPlan::registers_per_thread() const {
  return impl_->plan.kernel->registers;
}
int ForwardPlan::shared_memory_bytes() const {
  return impl_->plan.kernel->static_smem + impl_->plan.kernel->dynamic_smem;
}
int ForwardPlan::local_memory_bytes() const {
  return impl_->plan.kernel->local_bytes;
}

void ForwardPlan::run(const ForwardArgs& args, Stream stream) const {
  using codegen::ViewExtent;
  const Impl& m = *impl_;
  const auto& s = m.problem.spec;
  const auto& sh = m.problem.shape;
  const ViewExtent q{"q", args.q, {sh.batch, sh.seqlen_q, s.num_heads}, s.head_dim_qk};
  const ViewExtent k{"k", args.k, {sh.batch, sh.seqlen_k, s.num_kv_heads}, s.head_dim_qk};
  const ViewExtent v{"v", args.v, {sh.batch, sh.seqlen_k, s.num_kv_heads}, s.head_dim_v};
  const ViewExtent o{"o", args.o, {sh.batch, sh.seqlen_q, s.num_heads}, s.head_dim_v};
  for (const ViewExtent* e : {&q, &k, &v, &o})
    codegen::check_view(*e);
  if (s.layout == Layout::v_in_k) codegen::check_v_in_k(args.k, args.v, s.head_dim_v);
  codegen::check_pointer("lse", args.lse, 4);
  const codegen::ByteRange lse =
      codegen::fp32_range("lse", args.lse, sh.batch * s.num_heads * sh.seqlen_q);
  codegen::check_no_self_overlap(o);
  codegen::check_disjoint(o, lse);
  for (const ViewExtent* in : {&q, &k, &v}) {
    codegen::check_disjoint(o, *in);
    codegen::check_disjoint(*in, lse);
  }

  FwdParams p{};
  p.q = args.q.data, p.k = args.k.data, p.v = args.v.data;
  p.o = const_cast<void*>(args.o.data);
  p.lse = args.lse;
  p.q_batch_stride = args.q.batch_stride, p.q_seq_stride = args.q.seq_stride,
  p.q_head_stride = args.q.head_stride;
  p.k_batch_stride = args.k.batch_stride, p.k_seq_stride = args.k.seq_stride,
  p.k_head_stride = args.k.head_stride;
  p.v_batch_stride = args.v.batch_stride, p.v_seq_stride = args.v.seq_stride,
  p.v_head_stride = args.v.head_stride;
  p.o_batch_stride = args.o.batch_stride, p.o_seq_stride = args.o.seq_stride,
  p.o_head_stride = args.o.head_stride;
  p.batch = int(sh.batch);
  p.num_heads = s.num_heads;
  p.heads_per_kv = s.num_heads / s.num_kv_heads;
  p.seqlen_q = int(sh.seqlen_q);
  p.seqlen_k = int(sh.seqlen_k);
  p.num_m_blocks = m.num_m_blocks;
  p.softmax_scale = effective_softmax_scale(m.problem);
  p.softmax_scale_log2 = p.softmax_scale * 1.4426950408889634f;

  runtime::make_current(m.plan.context); // no allocation: run() is graph-capturable
  FwdTmaParams tma{};
  if (m.plan.config.warp_specialized)
    tma = codegen::forward_tensor_maps(m.problem, m.plan.config, args);
  void* kernel_args[] = {&p, &tma}; // the kernels without tensor maps take only the first
  const unsigned grid = unsigned(int64_t(m.num_m_blocks) * sh.batch * s.num_heads);
  ATTNJIT_CU(cuLaunchKernel(m.plan.kernel->function, grid, 1, 1, m.plan.generated.threads, 1, 1,
                            m.plan.generated.dynamic_smem, reinterpret_cast<CUstream>(stream),
                            kernel_args, nullptr));
}

} // namespace attnjit

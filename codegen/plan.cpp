#include <attnjit/device.h>
#include <attnjit/error.h>
#include <attnjit/plan.h>

#include "codegen/argument_checks.h"
#include "codegen/forward_launch.h"
#include "codegen/plan_kernel.h"
#include "runtime/driver.h"

#include <fmt/format.h>

namespace attnjit {

TensorView contiguous_bshd(const void* data, int64_t seqlen, int64_t heads, int64_t head_dim) {
  return {data, seqlen * heads * head_dim, heads * head_dim, head_dim};
}

struct ForwardPlan::Impl {
  AttentionProblem problem;
  int device = 0;
  codegen::PlanKernel plan;
  int resident_ctas = 0; // codegen::ForwardLaunch::resident_ctas
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
  // Throws when the grid would not fit a launch.
  codegen::grid_blocks(problem.shape.seqlen_q, m.plan.config.block_m,
                       problem.shape.batch * problem.spec.num_heads, problem);
  runtime::make_current(m.plan.context);
  m.resident_ctas = codegen::resident_ctas(m.plan.kernel->function, m.plan.generated.threads,
                                           m.plan.generated.dynamic_smem, m.plan.device.sm_count);
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

  runtime::make_current(m.plan.context); // no allocation: run() is graph-capturable
  const codegen::ForwardLaunch launch{m.plan.kernel->function,  m.plan.config,
                                      m.plan.generated.threads, m.plan.generated.dynamic_smem,
                                      m.resident_ctas,          m.plan.device.l2_bytes};
  runtime::check(
      codegen::enqueue_forward(launch, m.problem, args, reinterpret_cast<CUstream>(stream)),
      "cuLaunchKernel(forward)");
}

} // namespace attnjit

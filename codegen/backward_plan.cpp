#include <attnjit/error.h>
#include <attnjit/plan.h>

#include "codegen/argument_checks.h"
#include "codegen/backward_launch.h"
#include "codegen/plan_kernel.h"
#include "codegen/tile_rules.h"
#include "runtime/driver.h"

#include <fmt/format.h>

#include <array>

namespace attnjit {

struct BackwardPlan::Impl {
  AttentionProblem problem;
  int device = 0;
  codegen::PlanKernel plan;
  codegen::BackwardLayout layout;
  codegen::BackwardKernels kernels;
};

BackwardPlan::BackwardPlan(const AttentionProblem& problem, std::optional<TileConfig> config,
                           int device)
    : BackwardPlan(problem, config, PlanOptions{device, {}}) {}

BackwardPlan::BackwardPlan(const AttentionProblem& problem, const PlanOptions& options)
    : BackwardPlan(problem, std::nullopt, options) {}

BackwardPlan::BackwardPlan(const AttentionProblem& problem, std::optional<TileConfig> config,
                           const PlanOptions& options)
    : impl_(std::make_unique<Impl>()) {
  if (problem.spec.pass != Pass::backward)
    throw Error(ErrorKind::invalid_argument,
                fmt::format("BackwardPlan needs a backward spec (pass = bwd), got {}",
                            to_string(problem.spec)));
  Impl& m = *impl_;
  m.problem = problem;
  m.device = options.device;
  m.plan = codegen::prepare_plan_kernel(problem, config, options);
  m.layout = codegen::backward_layout(problem, m.plan.config, m.plan.device.sm_count);
  const auto& f = m.plan.kernel->functions; // GeneratedKernel::name_expressions() order
  m.kernels = {f[0],
               f[1],
               f[2],
               f[3],
               m.plan.generated.threads,
               m.plan.generated.dynamic_smem,
               m.plan.config,
               codegen::backward_launches_overlap(m.plan.device)};
  if (m.layout.dq_smem > 0) {
    runtime::use_device(options.device);
    runtime::check(codegen::prepare_backward_kernels(m.kernels, m.layout),
                   "cuFuncSetAttribute(deterministic dQ kernel, MAX_DYNAMIC_SHARED_SIZE_BYTES)");
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
  return impl_->layout.workspace_bytes();
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

} // namespace

void BackwardPlan::run(const BackwardArgs& a, Stream stream) const {
  const Impl& m = *impl_;
  check_arguments(m.problem, a, workspace_bytes());
  runtime::make_current(m.plan.context); // no allocation: run() is graph-capturable
  const codegen::LaunchStatus launched = codegen::enqueue_backward(
      m.kernels, m.problem, m.layout, a, reinterpret_cast<CUstream>(stream));
  runtime::check(launched.result, launched.call);
}

} // namespace attnjit

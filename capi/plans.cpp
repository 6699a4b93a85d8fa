// Forward and backward plans through the C API: create, describe, run, destroy.
#include "capi/handles.h"
#include "capi/status.h"

#include <attnjit/error.h>

#include <optional>

using namespace attnjit;

namespace {

std::optional<TileConfig> optional_config(const attnjit_tile_config* config) {
  if (config == nullptr) return std::nullopt;
  return capi::to_config(*config);
}

template <class Plan> attnjit_plan_info info_of(const Plan& plan, const std::string& warnings) {
  attnjit_plan_info info{};
  info.config = capi::to_c(plan.config());
  const auto source = plan.config_source();
  info.config_source = source ? capi::to_c(*source) : int32_t(ATTNJIT_CONFIG_CALLER);
  info.binary_from_cache = plan.binary_from_cache() ? 1 : 0;
  info.registers_per_thread = plan.registers_per_thread();
  info.shared_memory_bytes = plan.shared_memory_bytes();
  info.local_memory_bytes = plan.local_memory_bytes();
  info.cache_warnings = warnings.c_str();
  return info;
}

} // namespace

extern "C" {

// ---- Forward ----

attnjit_status attnjit_forward_plan_create(const attnjit_problem* problem,
                                           const attnjit_tile_config* config, int device,
                                           attnjit_forward_plan** plan) {
  if (plan != nullptr) *plan = nullptr;
  return capi::guarded("attnjit_forward_plan_create", [&] {
    capi::require(problem, "problem");
    capi::require(plan, "plan (the output pointer)");
    ForwardPlan made(capi::to_problem(*problem), optional_config(config), device);
    std::string warnings = capi::join_lines(made.cache_warnings());
    *plan = new attnjit_forward_plan{std::move(made), std::move(warnings)};
  });
}

void attnjit_forward_plan_destroy(attnjit_forward_plan* plan) {
  delete plan;
}

attnjit_status attnjit_forward_plan_info(const attnjit_forward_plan* plan,
                                         attnjit_plan_info* info) {
  return capi::guarded("attnjit_forward_plan_info", [&] {
    capi::require(plan, "plan");
    capi::require(info, "info");
    *info = info_of(plan->plan, plan->cache_warnings);
  });
}

attnjit_status attnjit_forward_plan_run(const attnjit_forward_plan* plan,
                                        const attnjit_forward_args* args, attnjit_stream stream) {
  return capi::guarded("attnjit_forward_plan_run", [&] {
    capi::require(plan, "plan");
    capi::require(args, "args");
    ForwardArgs a;
    a.q = capi::to_view(args->q), a.k = capi::to_view(args->k), a.v = capi::to_view(args->v);
    a.o = capi::to_view(args->o);
    a.lse = args->lse;
    plan->plan.run(a, stream);
  });
}

// ---- Backward ----

attnjit_status attnjit_backward_plan_create(const attnjit_problem* problem,
                                            const attnjit_tile_config* config, int device,
                                            attnjit_backward_plan** plan) {
  if (plan != nullptr) *plan = nullptr;
  return capi::guarded("attnjit_backward_plan_create", [&] {
    capi::require(problem, "problem");
    capi::require(plan, "plan (the output pointer)");
    BackwardPlan made(capi::to_problem(*problem), optional_config(config), device);
    std::string warnings = capi::join_lines(made.cache_warnings());
    *plan = new attnjit_backward_plan{std::move(made), std::move(warnings)};
  });
}

void attnjit_backward_plan_destroy(attnjit_backward_plan* plan) {
  delete plan;
}

attnjit_status attnjit_backward_plan_info(const attnjit_backward_plan* plan,
                                          attnjit_plan_info* info) {
  return capi::guarded("attnjit_backward_plan_info", [&] {
    capi::require(plan, "plan");
    capi::require(info, "info");
    *info = info_of(plan->plan, plan->cache_warnings);
    info->workspace_bytes = plan->plan.workspace_bytes();
  });
}

attnjit_status attnjit_backward_plan_workspace_size(const attnjit_backward_plan* plan,
                                                    size_t* bytes) {
  return capi::guarded("attnjit_backward_plan_workspace_size", [&] {
    capi::require(plan, "plan");
    capi::require(bytes, "bytes");
    *bytes = plan->plan.workspace_bytes();
  });
}

attnjit_status attnjit_backward_plan_run(const attnjit_backward_plan* plan,
                                         const attnjit_backward_args* args, attnjit_stream stream) {
  return capi::guarded("attnjit_backward_plan_run", [&] {
    capi::require(plan, "plan");
    capi::require(args, "args");
    BackwardArgs a;
    a.q = capi::to_view(args->q), a.k = capi::to_view(args->k), a.v = capi::to_view(args->v);
    a.o = capi::to_view(args->o);
    a.dout = capi::to_view(args->dout);
    a.lse = args->lse;
    a.dq = capi::to_view(args->dq), a.dk = capi::to_view(args->dk), a.dv = capi::to_view(args->dv);
    a.workspace = args->workspace;
    a.workspace_bytes = args->workspace_bytes;
    plan->plan.run(a, stream);
  });
}

} // extern "C"

// What the C API's opaque handles are, and the conversions between its structs and the C++ API's.
// The structs' enum fields arrive as plain integers from any language, so each is range-checked.
#pragma once

#include <attnjit/c_api.h>
#include <attnjit/plan.h>
#include <attnjit/spec.h>

#include "cache/layered_cache.h"

#include <memory>
#include <string>

struct attnjit_forward_plan {
  attnjit::ForwardPlan plan;
  std::string cache_warnings; // one a line, for attnjit_plan_info
};

struct attnjit_backward_plan {
  attnjit::BackwardPlan plan;
  std::string cache_warnings;
};

struct attnjit_cache {
  std::unique_ptr<attnjit::cache::Cache> cache;
  std::string pending_warnings;   // from opening, handed out with the first lookup
  std::string database, warnings; // what the last lookup's pointers point to
};

namespace attnjit::capi {

// Throws Error(invalid_argument) naming the field for an enum value out of range or a reserved
// field that is not 0.
AttentionProblem to_problem(const attnjit_problem& problem);
TileConfig to_config(const attnjit_tile_config& config);
attnjit_tile_config to_c(const TileConfig& config);
int32_t to_c(cache::LookupSource source); // ATTNJIT_CONFIG_*
TensorView to_view(const attnjit_tensor& tensor);

// Lines joined with '\n'.
std::string join_lines(const std::vector<std::string>& lines);

} // namespace attnjit::capi

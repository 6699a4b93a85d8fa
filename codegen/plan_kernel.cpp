#include "codegen/plan_kernel.h"

#include <attnjit/error.h>

#include "codegen/tile_rules.h"
#include "runtime/driver.h"

#include <fmt/format.h>

#include <climits>

namespace attnjit::codegen {

PlanKernel prepare_plan_kernel(const AttentionProblem& problem, std::optional<TileConfig> config,
                               int device) {
  validate(problem);
  runtime::use_device(device);
  PlanKernel out;
  out.device = query_device(device);
  const ArchLimits limits{out.device.arch(), out.device.max_smem_per_block, 1024};
  out.config = config ? *config : default_config(problem.spec, limits);
  if (std::string why = why_not(problem.spec, out.config, limits); !why.empty())
    throw Error(ErrorKind::invalid_argument,
                fmt::format("config {} cannot run {} on {} ({}): {}", to_string(out.config),
                            to_string(problem.spec), out.device.name, out.device.arch(), why));
  out.generated = generate(problem.spec, out.config);
  const runtime::CompileRequest request{out.generated.source,
                                        out.generated.slug,
                                        out.generated.name_expressions(),
                                        out.device.arch(),
                                        {}};
  out.kernel = runtime::load_kernel(request, device, out.generated.dynamic_smem);
  return out;
}

int grid_blocks(int64_t n, int block, int64_t multiplier, const AttentionProblem& problem) {
  const int64_t blocks = (n + block - 1) / block;
  if (blocks * multiplier > INT_MAX)
    throw Error(ErrorKind::invalid_argument,
                fmt::format("{} x {} needs {} thread blocks, over the grid limit {}",
                            to_string(problem.shape), to_string(problem.spec), blocks * multiplier,
                            INT_MAX));
  return static_cast<int>(blocks);
}

} // namespace attnjit::codegen

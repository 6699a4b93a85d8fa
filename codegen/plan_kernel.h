// What every plan does once at creation: pick and check the TileConfig for the device, generate
// the source, compile and load it (once per process per source and device).
#pragma once

#include <attnjit/cache.h>
#include <attnjit/device.h>
#include <attnjit/plan.h>
#include <attnjit/spec.h>

#include "codegen/codegen.h"
#include "runtime/kernel_loader.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace attnjit::codegen {

struct PlanKernel {
  DeviceInfo device;
  CUcontext context = nullptr; // the device's primary context, made current by run()
  TileConfig config;
  GeneratedKernel generated;
  std::shared_ptr<const runtime::LoadedKernel> kernel;
  std::optional<cache::LookupSource> config_source; // nullopt: the caller gave the config
  bool binary_from_cache = false;                   // the cubin came from the database
  std::vector<std::string> cache_warnings;          // e.g. an unreadable user database
};

// Without a config, the tuning database chooses (exact shape, then its bucket, then the default
// table; docs/CACHE.md); with options.tune_on_miss enabled, a key that would get the default is
// tuned first (tuner/tune_on_miss.h). With a database, the cubin is looked up there too and stored
// after a compile, so a warm process does no NVRTC work. Throws Error(invalid_argument) naming the
// config, spec and device when the config cannot run.
PlanKernel prepare_plan_kernel(const AttentionProblem& problem, std::optional<TileConfig> config,
                               const PlanOptions& options);

// ceil(n / block) as an int, or Error(invalid_argument) when `blocks * multiplier` (the grid)
// would not fit a launch.
int grid_blocks(int64_t n, int block, int64_t multiplier, const AttentionProblem& problem);

} // namespace attnjit::codegen

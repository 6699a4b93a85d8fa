#include "codegen/plan_kernel.h"

#include <attnjit/error.h>

#include "cache/layered_cache.h"
#include "codegen/embedded_templates.h"
#include "codegen/tile_rules.h"
#include "runtime/driver.h"
#include "tuner/tune_on_miss.h"
#include "tuner/worker_client.h"
#include "tuner/worker_server.h"

#include <fmt/format.h>

#include <climits>
#include <map>
#include <mutex>

namespace attnjit::codegen {

// One cache per database location per process, shared by every plan (Cache locks itself).
static cache::Cache& process_cache(const std::string& sku) {
  static std::mutex mutex;
  static std::map<std::string, std::unique_ptr<cache::Cache>> caches;
  cache::CacheOptions options = cache::default_cache_options(sku);
  const std::string where = options.user_path + "|" + options.base_path;
  std::lock_guard lock(mutex);
  auto& entry = caches[where];
  if (!entry) entry = std::make_unique<cache::Cache>(std::move(options));
  return *entry;
}

static bool has_database(cache::Cache& c) {
  return c.user() != nullptr || c.base() != nullptr;
}

// The tuner for a key the database misses: candidates in the worker the options name (crash
// isolation), else in this process.
static tuner::MissResult tune_missing(const AttentionProblem& problem, const DeviceInfo& device,
                                      const TuneOnMiss& options, const std::string& user_db) {
  tuner::MissOptions miss;
  miss.db_path = user_db;
  miss.wait = options.wait;
  miss.tune.budget.seconds = double(options.budget.count());
  miss.make_bench = [worker = options.worker](int ordinal) -> std::unique_ptr<tuner::Bench> {
    if (worker.empty()) return tuner::make_local_bench(ordinal, /*simulate=*/false);
    return std::make_unique<tuner::WorkerBench>(worker, ordinal);
  };
  return tuner::tune_on_miss(problem, device, miss);
}

PlanKernel prepare_plan_kernel(const AttentionProblem& problem, std::optional<TileConfig> config,
                               const PlanOptions& options) {
  const int device = options.device;
  validate(problem);
  PlanKernel out;
  out.context = runtime::device_context(device);
  out.device = query_device(device);
  const ArchLimits limits{out.device.arch(), out.device.max_smem_per_block, 1024};
  cache::Cache& db = process_cache(out.device.name);
  if (config) {
    out.config = *config;
  } else {
    const cache::LookupResult found =
        db.lookup({out.device.name, problem.spec, problem.shape}, limits);
    out.config = found.config;
    out.config_source = found.source;
    if (found.source == cache::LookupSource::default_config && options.tune_on_miss.enabled) {
      const tuner::MissResult tuned =
          tune_missing(problem, out.device, options.tune_on_miss,
                       cache::default_cache_options(out.device.name).user_path);
      out.config = tuned.config;
      out.config_source = tuned.source;
      if (tuned.source == cache::LookupSource::default_config)
        out.cache_warnings.push_back("tune on miss: " + tuned.note);
    }
  }
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
  if (!has_database(db)) {
    out.kernel = runtime::load_kernel(request, device, out.generated.dynamic_smem);
  } else {
    const cache::BinaryKey key{request.source,
                               request.name_expressions,
                               request.arch,
                               nvrtc_version(),
                               runtime::default_options(request.arch),
                               codegen::template_hash()};
    const cache::BinaryLookup hit = db.find_binary(key);
    runtime::CompiledProgram program;
    if (hit.binary) {
      program.cubin = hit.binary->cubin;
      program.lowered_names = hit.binary->lowered_names;
      out.binary_from_cache = true;
    } else {
      program = runtime::compile(request);
      db.put_binary(key, {program.cubin, program.lowered_names});
    }
    out.kernel = runtime::load_compiled(program, request, device, out.generated.dynamic_smem);
  }
  for (std::string& warning : db.take_warnings())
    out.cache_warnings.push_back(std::move(warning));
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

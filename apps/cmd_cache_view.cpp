// `attnjit cache ls | show | explain | coverage`: read-only views of a database.
#include "apps/cmd_cache.h"
#include "apps/kernel_build.h"
#include "cache/layered_cache.h"
#include "cache/maintenance.h"
#include "codegen/embedded_templates.h"

#include <attnjit/device.h>
#include <attnjit/error.h>

#include <fmt/format.h>

#include <ctime>

namespace attnjit::apps {
namespace {

std::string timestamp(int64_t unix_seconds) {
  const std::time_t t = std::time_t(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

// The GPU a lookup is for and its limits: --gpu/--arch when given, else GPU 0.
std::pair<std::string, codegen::ArchLimits> target(const CacheArgs& args) {
  if (!args.gpu.empty())
    return {args.gpu, codegen::arch_limits(args.arch.empty() ? "sm_90a" : args.arch)};
  try {
    const DeviceInfo device = query_device(0);
    return {device.name, args.arch.empty() ? limits_of(device) : codegen::arch_limits(args.arch)};
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::no_device) throw;
    throw Error(ErrorKind::invalid_argument,
                fmt::format("name the GPU with --gpu (no GPU to ask: {})", e.what()));
  }
}

cache::RecordKey key_from_flags(const CacheArgs& args) {
  const AttentionProblem problem = args.problem->problem();
  return {target(args).first, problem.spec, problem.shape};
}

void print_record(const std::string& path, int64_t id, const cache::TuningRecord& r) {
  const std::string current = codegen::template_hash();
  const auto& d = r.device;
  fmt::print("database    {}\n", path);
  fmt::print("id          {}\n", id);
  fmt::print("gpu         {} (compute {}.{}, {} SMs, driver {})\n", d.sku, d.cc_major, d.cc_minor,
             d.sm_count, d.driver_version);
  fmt::print("spec        {}\n", to_string(r.spec));
  fmt::print("shape       {}\n", to_string(r.shape));
  fmt::print("bucket      {}\n", to_string(cache::bucket_of(r.spec, r.shape)));
  fmt::print("config      {}\n", to_string(r.config));
  fmt::print("kernel      {}\n", kernel_slug(r.spec, r.config));
  fmt::print("median      {:.4f} ms (cv {:.4f} over {} runs{})\n", r.median_ms, r.cv, r.runs,
             r.noisy ? ", noisy" : "");
  fmt::print("throughput  {:.1f} TFLOP/s\n", r.tflops);
  fmt::print("max error   {:.3g}\n", r.max_error);
  fmt::print("candidates  {} tried, {} pruned, {} rejected\n", r.candidates_tried,
             r.candidates_pruned, r.candidates_rejected);
  fmt::print("templates   {}{}\n", r.template_hash,
             r.template_hash == current ? "" : fmt::format(" (stale: this build has {})", current));
  fmt::print("nvrtc       {}\n", r.nvrtc_version);
  fmt::print("attnjit     {}\n", r.attnjit_version);
  fmt::print("created     {}\n", timestamp(r.created_at));
}

} // namespace

std::string record_line(int64_t id, const cache::TuningRecord& r) {
  return fmt::format("{:>5}  {}  {}  {}  ->  {}  {:.4f} ms  {:.1f} TFLOP/s  {}{}", id, r.device.sku,
                     to_string(r.spec), to_string(r.shape), to_string(r.config), r.median_ms,
                     r.tflops, timestamp(r.created_at),
                     r.template_hash == codegen::template_hash() ? "" : "  [stale templates]");
}

int cache_ls(const CacheArgs& args) {
  for (const std::string& path : input_files(args)) {
    const auto db = cache::open_for_reading(path);
    const std::vector<cache::StoredRecord> records = db->records();
    fmt::print("{}: {} records\n", path, records.size());
    for (const cache::StoredRecord& s : records)
      if (args.sku.empty() || s.record.device.sku == args.sku)
        fmt::print("{}\n", record_line(s.id, s.record));
  }
  return 0;
}

int cache_show(const CacheArgs& args) {
  CacheArgs files = args;
  files.operands.clear();
  const bool by_id = !args.operands.empty();
  int64_t id = 0;
  if (by_id) {
    try {
      id = std::stoll(args.operands.front());
    } catch (const std::exception&) {
      throw Error(ErrorKind::invalid_argument,
                  fmt::format("show: '{}' is not a record id (see `attnjit cache ls`)",
                              args.operands.front()));
    }
  }
  const cache::RecordKey key = by_id ? cache::RecordKey{} : key_from_flags(args);
  for (const std::string& path : input_files(files)) {
    const auto db = cache::open_for_reading(path);
    if (by_id) {
      if (auto stored = db->record(id)) {
        print_record(path, stored->id, stored->record);
        return 0;
      }
    } else if (auto record = db->find(key)) {
      print_record(path, 0, *record);
      return 0;
    }
  }
  throw Error(
      ErrorKind::invalid_argument,
      by_id ? fmt::format("no record {}", id)
            : fmt::format("no record for {} (try `attnjit cache explain`)", cache::to_string(key)));
}

int cache_explain(const CacheArgs& args) {
  if (args.db.empty() && args.base.empty())
    throw Error(ErrorKind::invalid_argument, "explain needs --db, --base or both");
  const auto [sku, limits] = target(args);
  const AttentionProblem problem = args.problem->problem();
  const cache::RecordKey key{sku, problem.spec, problem.shape};
  cache::Cache cache({args.db, args.base, "", /*user_read_only=*/true});
  const std::vector<cache::ExplainStep> steps = cache.explain(key, limits);
  for (const std::string& warning : cache.take_warnings())
    fmt::print(stderr, "attnjit: warning: {}\n", warning);
  fmt::print("key     {}\n", cache::to_string(key));
  fmt::print("bucket  {}\n", to_string(cache::bucket_of(key.spec, key.shape)));
  for (const cache::ExplainStep& s : steps)
    fmt::print("{:<8} {:<5} {}{}\n        {}\n", to_string(s.level), s.hit ? "hit" : "miss",
               s.database.empty() ? "(no database)" : s.database, s.used ? "  <- used" : "",
               s.reason);
  return 0;
}

int cache_coverage(const CacheArgs& args) {
  for (const std::string& path : input_files(args)) {
    const auto db = cache::open_for_reading(path);
    const std::vector<cache::CoverageEntry> entries = cache::coverage(*db, args.sku);
    fmt::print("{}: {} specs{}\n", path, entries.size(),
               args.sku.empty() ? "" : fmt::format(" on {}", args.sku));
    std::string gpu;
    for (const cache::CoverageEntry& e : entries) {
      if (e.sku != gpu) fmt::print("{}\n", gpu = e.sku);
      fmt::print("  {}: {} shapes\n", to_string(e.spec), e.shapes.size());
      for (const AttentionShape& shape : e.shapes)
        fmt::print("    {}  (bucket {})\n", to_string(shape),
                   to_string(cache::bucket_of(e.spec, shape)));
    }
  }
  return 0;
}

} // namespace attnjit::apps

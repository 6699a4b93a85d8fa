// The lookup order (docs/CACHE.md, "Lookup"): exact shape, then the shape's bucket, then
// codegen::default_config; at each level the user database before the base. lookup() stops at
// the first hit, explain() walks every step, and both share walk() so they cannot disagree.
#include "cache/layered_cache.h"

#include <attnjit/error.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <ctime>

namespace attnjit::cache {
namespace {

std::string date_of(int64_t unix_seconds) {
  const std::time_t t = std::time_t(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d", &tm);
  return text;
}

std::string describe_hit(const TuningRecord& r) {
  return fmt::format("{} ({:.3f} ms, {:.1f} TFLOP/s, tuned {})", to_string(r.config), r.median_ms,
                     r.tflops, date_of(r.created_at));
}

} // namespace

struct Cache::Walk {
  LookupResult result;
  std::vector<ExplainStep> steps;
};

std::string Cache::why_skip(const TuningRecord& record, const KernelSpec& spec,
                            const codegen::ArchLimits& limits) const {
  if (record.template_hash != template_hash_)
    return fmt::format("tuned with templates {}, this build has {} (stale; `attnjit cache prune "
                       "--stale-templates` removes it)",
                       record.template_hash, template_hash_);
  if (std::string why = codegen::why_not(spec, record.config, limits); !why.empty())
    return fmt::format("its config {} cannot run on {}: {}", to_string(record.config), limits.arch,
                       why);
  return {};
}

ExplainStep Cache::try_exact(Database& db, const RecordKey& key, const codegen::ArchLimits& limits,
                             std::optional<TuningRecord>& hit) {
  ExplainStep step{LookupSource::exact, db.path(), false, false, {}};
  if (std::optional<TuningRecord> record = db.find(key)) {
    if (std::string why = why_skip(*record, key.spec, limits); !why.empty()) {
      step.reason = "a record exists but is skipped: " + why;
      return step;
    }
    step.hit = true;
    step.reason = "record for this shape: " + describe_hit(*record);
    hit = std::move(record);
    return step;
  }
  if (const int64_t for_sku = db.count_records(key.sku); for_sku == 0) {
    const int64_t all = db.count_records();
    step.reason = all == 0
                      ? "the database holds no records"
                      : fmt::format("no records for GPU '{}' ({} for other GPUs)", key.sku, all);
  } else if (const int64_t for_spec = db.count_records(key.sku, key.spec); for_spec == 0) {
    step.reason =
        fmt::format("no records for this spec on '{}' ({} for other specs)", key.sku, for_sku);
  } else {
    std::vector<std::string> nearest;
    for (const AttentionShape& s : db.tuned_shapes(key, 3))
      nearest.push_back(to_string(s));
    step.reason = fmt::format("no record for {}; {} shapes of this spec are tuned, nearest: {}",
                              to_string(key.shape), for_spec, fmt::join(nearest, "; "));
  }
  return step;
}

ExplainStep Cache::try_bucket(Database& db, const RecordKey& key, const codegen::ArchLimits& limits,
                              std::optional<TuningRecord>& hit) {
  ExplainStep step{LookupSource::bucket, db.path(), false, false, {}};
  const ShapeBucket bucket = bucket_of(key.spec, key.shape);
  const std::vector<TuningRecord> mates = db.find_in_bucket(key);
  if (mates.empty()) {
    step.reason =
        fmt::format("no tuned shape of this spec on '{}' in bucket {}", key.sku, to_string(bucket));
    return step;
  }
  std::string first_skip;
  for (const TuningRecord& r : mates) {
    if (std::string why = why_skip(r, key.spec, limits); !why.empty()) {
      if (first_skip.empty()) first_skip = fmt::format("{}: {}", to_string(r.shape), why);
      continue;
    }
    step.hit = true;
    step.reason = fmt::format("nearest shape in bucket {} is {}: {}", to_string(bucket),
                              to_string(r.shape), describe_hit(r));
    hit = r;
    return step;
  }
  step.reason = fmt::format("{} records in bucket {}, all skipped; first: {}", mates.size(),
                            to_string(bucket), first_skip);
  return step;
}

Cache::Walk Cache::walk(const RecordKey& key, const codegen::ArchLimits& limits, bool every_step) {
  Walk w;
  bool found = false;
  for (LookupSource level : {LookupSource::exact, LookupSource::bucket}) {
    for (Layer* layer : {&user_, &base_}) {
      if (layer->path.empty()) continue;
      ExplainStep step{level, layer->path, false, false, {}};
      std::optional<TuningRecord> hit;
      if (!layer->db) {
        step.reason = "database not available: " + layer->unusable;
      } else {
        try {
          step = level == LookupSource::exact ? try_exact(*layer->db, key, limits, hit)
                                              : try_bucket(*layer->db, key, limits, hit);
        } catch (const Error& e) {
          drop(*layer, e.what());
          step.reason = fmt::format("lookup failed, database dropped: {}", e.what());
        }
      }
      if (step.hit && !found) {
        found = step.used = true;
        w.result = {hit->config, level, std::move(hit), layer->path};
      }
      w.steps.push_back(std::move(step));
      if (found && !every_step) return w;
    }
  }
  ExplainStep fallback{LookupSource::default_config, "", true, !found, {}};
  const TileConfig config = codegen::default_config(key.spec, limits);
  fallback.reason =
      fmt::format("codegen::default_config for {}: {}", limits.arch, to_string(config));
  if (!found) w.result = {config, LookupSource::default_config, std::nullopt, ""};
  w.steps.push_back(std::move(fallback));
  return w;
}

LookupResult Cache::lookup(const RecordKey& key, const codegen::ArchLimits& limits) {
  std::lock_guard lock(mutex_);
  return walk(key, limits, false).result;
}

std::vector<ExplainStep> Cache::explain(const RecordKey& key, const codegen::ArchLimits& limits) {
  std::lock_guard lock(mutex_);
  return walk(key, limits, true).steps;
}

} // namespace attnjit::cache

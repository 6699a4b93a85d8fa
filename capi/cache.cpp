// The tuning cache through the C API: where plans look, and a handle for lookups of one's own.
#include "capi/handles.h"
#include "capi/status.h"

#include "cache/layered_cache.h"
#include "codegen/tile_rules.h"

#include <attnjit/cache_location.h>
#include <attnjit/device.h>
#include <attnjit/error.h>

#include <fmt/format.h>

#include <utility>

using namespace attnjit;

namespace {

std::optional<std::string> optional_path(const char* path) {
  if (path == nullptr) return std::nullopt;
  return std::string(path);
}

constexpr unsigned kKnownFlags = ATTNJIT_CACHE_USER_READ_ONLY;

} // namespace

extern "C" {

attnjit_status attnjit_set_cache_location(const char* user_db, const char* base_db,
                                          const char* base_dir) {
  return capi::guarded("attnjit_set_cache_location", [&] {
    set_cache_location({optional_path(user_db), optional_path(base_db), optional_path(base_dir)});
  });
}

attnjit_status attnjit_cache_location(const char* sku, const char** user_db, const char** base_db) {
  static thread_local std::string user, base;
  return capi::guarded("attnjit_cache_location", [&] {
    capi::require(user_db, "user_db (the output pointer)");
    capi::require(base_db, "base_db (the output pointer)");
    const cache::CacheOptions options =
        cache::default_cache_options(sku ? std::string(sku) : query_device(0).name);
    user = options.user_path, base = options.base_path;
    *user_db = user.c_str(), *base_db = base.c_str();
  });
}

attnjit_status attnjit_cache_open(const char* user_db, const char* base_db, unsigned flags,
                                  attnjit_cache** out) {
  if (out != nullptr) *out = nullptr;
  return capi::guarded("attnjit_cache_open", [&] {
    capi::require(out, "cache (the output pointer)");
    if ((flags & ~kKnownFlags) != 0)
      throw Error(ErrorKind::invalid_argument,
                  fmt::format("unknown flags {:#x} (known: ATTNJIT_CACHE_USER_READ_ONLY)",
                              flags & ~kKnownFlags));
    cache::CacheOptions options;
    options.user_path = user_db ? user_db : "";
    options.base_path = base_db ? base_db : "";
    options.user_read_only = (flags & ATTNJIT_CACHE_USER_READ_ONLY) != 0;
    auto handle = std::make_unique<attnjit_cache>();
    handle->cache = std::make_unique<cache::Cache>(options);
    const std::string warnings = capi::join_lines(handle->cache->take_warnings());
    // Asked for by name, a database that cannot be used is an error here, not a warning.
    if ((!options.user_path.empty() && handle->cache->user() == nullptr) ||
        (!options.base_path.empty() && handle->cache->base() == nullptr))
      throw Error(ErrorKind::cache, warnings);
    handle->pending_warnings = warnings;
    *out = handle.release();
  });
}

void attnjit_cache_close(attnjit_cache* cache) {
  delete cache;
}

attnjit_status attnjit_cache_lookup(attnjit_cache* cache, const char* sku, const char* arch,
                                    const attnjit_problem* problem, attnjit_lookup* result) {
  return capi::guarded("attnjit_cache_lookup", [&] {
    capi::require(cache, "cache");
    capi::require(problem, "problem");
    capi::require(result, "result");
    const AttentionProblem p = capi::to_problem(*problem);
    validate(p);
    std::optional<DeviceInfo> device;
    if (sku == nullptr || arch == nullptr) device = query_device(0);
    const codegen::ArchLimits limits =
        arch ? codegen::arch_limits(arch)
             : codegen::ArchLimits{device->arch(), device->max_smem_per_block, 1024};
    const cache::LookupResult found =
        cache->cache->lookup({sku ? std::string(sku) : device->name, p.spec, p.shape}, limits);
    std::vector<std::string> warnings = cache->cache->take_warnings();
    if (!cache->pending_warnings.empty())
      warnings.insert(warnings.begin(), std::exchange(cache->pending_warnings, {}));
    cache->database = found.database;
    cache->warnings = capi::join_lines(warnings);
    *result = attnjit_lookup{capi::to_c(found.config), capi::to_c(found.source),
                             cache->database.c_str(), cache->warnings.c_str()};
  });
}

attnjit_status attnjit_cache_record_count(attnjit_cache* cache, int64_t* count) {
  return capi::guarded("attnjit_cache_record_count", [&] {
    capi::require(cache, "cache");
    capi::require(count, "count");
    int64_t total = 0;
    for (cache::Database* db : {cache->cache->user(), cache->cache->base()})
      if (db != nullptr) total += db->count_records();
    *count = total;
  });
}

} // extern "C"

// What a plan talks to: a writable user database layered over a read-only base database shipped
// for the GPU SKU. Lookups go exact -> bucket -> default, the user's entry first at each level.
// Database problems never stop a lookup: a layer that cannot be opened or read is dropped with a
// warning (reported once, through take_warnings()), and the default config is always there.
#pragma once

#include "cache/database.h"
#include "codegen/tile_rules.h"

#include <attnjit/cache.h>

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace attnjit::cache {

struct CacheOptions {
  std::string user_path;     // writable; created with its folder when missing; "" for none
  std::string base_path;     // read-only base database; "" for none
  std::string template_hash; // records tuned with other templates are skipped; "" for this build's
  bool user_read_only = false; // open an existing user database for lookups only (the CLI)
};

// $ATTNJIT_CACHE_DB, else $XDG_CACHE_HOME/attnjit/cache.db, else ~/.cache/attnjit/cache.db;
// "" when $ATTNJIT_CACHE_DB is "off" or no home is known. The base database: $ATTNJIT_BASE_DB,
// else $ATTNJIT_BASE_DIR/<sku_slug(sku)>.db when that file exists, else "". What the host app set
// with set_cache_location() (include/attnjit/cache_location.h) comes before the environment.
CacheOptions default_cache_options(const std::string& sku);

// "NVIDIA H100 80GB HBM3" -> "nvidia-h100-80gb-hbm3": the base database's file name.
std::string sku_slug(const std::string& sku);

struct LookupResult {
  TileConfig config;
  LookupSource source = LookupSource::default_config;
  std::optional<TuningRecord> record; // for exact and bucket
  std::string database;               // the file that served it; "" for the default
};

// One step of the lookup, hit or miss, with the reason.
struct ExplainStep {
  LookupSource level = LookupSource::default_config;
  std::string database; // "" for the default step
  bool hit = false;
  bool used = false; // the first hit: what lookup() returns
  std::string reason;
};

class Cache {
public:
  explicit Cache(CacheOptions options);
  ~Cache();

  // Never throws for database problems (see above); throws only what codegen::default_config
  // does for a spec it cannot serve.
  LookupResult lookup(const RecordKey& key, const codegen::ArchLimits& limits);
  // Every step lookup() would take, also those after the hit, each saying why it hit or missed.
  std::vector<ExplainStep> explain(const RecordKey& key, const codegen::ArchLimits& limits);

  // The user database first, then the base; a stale entry is reported, never returned.
  BinaryLookup find_binary(const BinaryKey& key);
  // Into the user database; false (with a warning) when there is none.
  bool put_binary(const BinaryKey& key, const CachedBinary& binary);
  // Into the user database; throws Error(cache) when there is none.
  void put(const TuningRecord& record);

  // nullptr when absent or unusable. The user database is where the tuner writes and claims.
  Database* user() { return user_.db.get(); }
  Database* base() { return base_.db.get(); }
  const std::string& template_hash() const { return template_hash_; }

  // Warnings not yet taken, each once: a layer that could not be opened or failed later.
  std::vector<std::string> take_warnings();

private:
  struct Layer {
    const char* name; // "user" or "base"
    std::string path;
    std::unique_ptr<Database> db;
    std::string unusable; // why db is null although path is set
  };
  struct Walk;

  void open_user(const std::string& path, bool read_only);
  void open_base(const std::string& path);
  void drop(Layer& layer, const std::string& why);
  Walk walk(const RecordKey& key, const codegen::ArchLimits& limits, bool every_step);
  ExplainStep try_exact(Database& db, const RecordKey& key, const codegen::ArchLimits& limits,
                        std::optional<TuningRecord>& hit);
  ExplainStep try_bucket(Database& db, const RecordKey& key, const codegen::ArchLimits& limits,
                         std::optional<TuningRecord>& hit);
  // Empty when `record` may serve on `limits`; else why not.
  std::string why_skip(const TuningRecord& record, const KernelSpec& spec,
                       const codegen::ArchLimits& limits) const;

  std::mutex mutex_;
  std::string template_hash_;
  Layer user_{"user", {}, nullptr, {}};
  Layer base_{"base", {}, nullptr, {}};
  bool user_writable_ = false;
  std::vector<std::string> warnings_;
};

} // namespace attnjit::cache

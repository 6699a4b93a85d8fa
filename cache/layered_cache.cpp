// Cache: opening the two layers, writes, binaries and warnings. The lookup itself is lookup.cpp.
#include "cache/layered_cache.h"

#include "codegen/embedded_templates.h"

#include <attnjit/cache_location.h>
#include <attnjit/error.h>

#include <fmt/format.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <system_error>
#include <utility>

namespace attnjit::cache {
namespace fs = std::filesystem;
namespace {

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

} // namespace

std::string sku_slug(const std::string& sku) {
  std::string slug;
  for (unsigned char c : sku) {
    if (std::isalnum(c))
      slug += char(std::tolower(c));
    else if (!slug.empty() && slug.back() != '-')
      slug += '-';
  }
  while (!slug.empty() && slug.back() == '-')
    slug.pop_back();
  return slug.empty() ? "unknown-gpu" : slug;
}

CacheOptions default_cache_options(const std::string& sku) {
  const CacheLocation set = cache_location(); // what the host app set wins over the environment
  CacheOptions options;
  if (set.user_db)
    options.user_path = *set.user_db;
  else if (const std::string db = env("ATTNJIT_CACHE_DB"); !db.empty())
    options.user_path = db == "off" ? "" : db;
  else if (const std::string xdg = env("XDG_CACHE_HOME"); !xdg.empty())
    options.user_path = (fs::path(xdg) / "attnjit" / "cache.db").string();
  else if (const std::string home = env("HOME"); !home.empty())
    options.user_path = (fs::path(home) / ".cache" / "attnjit" / "cache.db").string();

  // The host's base_db / base_dir pair replaces the environment's as a whole, so a host that names
  // a folder is not overridden by a stray $ATTNJIT_BASE_DB.
  const bool host_base = set.base_db || set.base_dir;
  const std::string base = host_base ? set.base_db.value_or("") : env("ATTNJIT_BASE_DB");
  const std::string dir = host_base ? set.base_dir.value_or("") : env("ATTNJIT_BASE_DIR");
  if (!base.empty()) {
    options.base_path = base;
  } else if (!dir.empty()) {
    // Not every SKU ships a base database; a missing one is no reason for a warning.
    const fs::path candidate = fs::path(dir) / (sku_slug(sku) + ".db");
    std::error_code ec;
    if (fs::is_regular_file(candidate, ec)) options.base_path = candidate.string();
  }
  return options;
}

Cache::Cache(CacheOptions options)
    : template_hash_(options.template_hash.empty() ? codegen::template_hash()
                                                   : options.template_hash) {
  if (!options.base_path.empty()) open_base(options.base_path);
  if (!options.user_path.empty()) open_user(options.user_path, options.user_read_only);
}

Cache::~Cache() = default;

void Cache::open_base(const std::string& path) {
  base_.path = path;
  try {
    base_.db = std::make_unique<Database>(path, OpenMode::immutable);
  } catch (const Error& e) {
    base_.unusable = e.what();
    warnings_.push_back(fmt::format("base database not used: {}", e.what()));
  }
}

void Cache::open_user(const std::string& path, bool read_only) {
  user_.path = path;
  std::error_code ec;
  if (!read_only) {
    if (const fs::path dir = fs::path(path).parent_path(); !dir.empty())
      fs::create_directories(dir, ec); // a failure shows up, better worded, in the open below
    try {
      user_.db = std::make_unique<Database>(path, OpenMode::read_write);
      user_writable_ = true;
      return;
    } catch (const Error& e) {
      user_.unusable = e.what();
    }
  }
  // A user database that exists but cannot be written (a read-only home) still has records.
  if (read_only || fs::is_regular_file(path, ec)) {
    try {
      user_.db = std::make_unique<Database>(path, OpenMode::read_only);
      if (!read_only)
        warnings_.push_back(fmt::format(
            "user database opened read-only, nothing will be saved to it: {}", user_.unusable));
      return;
    } catch (const Error& e) {
      if (read_only) user_.unusable = e.what();
    }
  }
  warnings_.push_back(fmt::format("user database not used ({}): {}",
                                  base_.db
                                      ? "working from the base database " + base_.path + " alone"
                                      : std::string("using default tile configs"),
                                  user_.unusable));
}

void Cache::drop(Layer& layer, const std::string& why) {
  layer.db.reset();
  layer.unusable = why;
  warnings_.push_back(
      fmt::format("{} database {} dropped after an error: {}", layer.name, layer.path, why));
}

void Cache::put(const TuningRecord& record) {
  std::lock_guard lock(mutex_);
  if (!user_.db)
    throw Error(ErrorKind::cache,
                fmt::format("no writable user database to store the record for {}{}",
                            to_string(key_of(record)),
                            user_.unusable.empty() ? "" : " (" + user_.unusable + ")"));
  user_.db->put(record);
}

BinaryLookup Cache::find_binary(const BinaryKey& key) {
  std::lock_guard lock(mutex_);
  BinaryLookup stale;
  for (Layer* layer : {&user_, &base_}) {
    if (!layer->db) continue;
    try {
      BinaryLookup found = layer->db->find_binary(key);
      if (found.binary) return found;
      if (!found.stale.empty() && stale.stale.empty())
        stale.stale = fmt::format("{} ({})", found.stale, layer->path);
    } catch (const Error& e) {
      drop(*layer, e.what());
    }
  }
  return stale;
}

bool Cache::put_binary(const BinaryKey& key, const CachedBinary& binary) {
  std::lock_guard lock(mutex_);
  if (!user_.db || !user_writable_) return false; // the open already warned
  try {
    user_.db->put_binary(key, binary);
    return true;
  } catch (const Error& e) {
    // Read-only or full: keep the database for lookups, stop trying to write (and warning).
    user_writable_ = false;
    warnings_.push_back(fmt::format("compiled kernels will not be saved: {}", e.what()));
    return false;
  }
}

std::vector<std::string> Cache::take_warnings() {
  std::lock_guard lock(mutex_);
  return std::exchange(warnings_, {});
}

} // namespace attnjit::cache

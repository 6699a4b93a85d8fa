// Where plans find their tuning databases (docs/CACHE.md, "Layering"). By default the environment
// says: $ATTNJIT_CACHE_DB (else ~/.cache/attnjit/cache.db) for the user's database,
// $ATTNJIT_BASE_DB or $ATTNJIT_BASE_DIR for the read-only base. A host app that ships its own
// databases sets them here instead, once, before it creates plans.
#pragma once

#include <optional>
#include <string>

namespace attnjit {

// Each field left unset keeps what the environment says; "" means none.
struct CacheLocation {
  std::optional<std::string> user_db; // writable; created with its folder when missing
  std::optional<std::string> base_db; // read-only; wins over base_dir
  // A folder of read-only <sku slug>.db files ("nvidia-h100-80gb-hbm3.db"), one per GPU model:
  // a plan uses the one for its GPU, when there is one.
  std::optional<std::string> base_dir;

  bool operator==(const CacheLocation&) const = default;
};

// For this process, for plans created after the call (plans made earlier keep their databases).
// Thread-safe.
void set_cache_location(const CacheLocation& location);
CacheLocation cache_location();

} // namespace attnjit

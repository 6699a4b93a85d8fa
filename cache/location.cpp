// The process's CacheLocation (include/attnjit/cache_location.h): what a host app set, consulted by
// default_cache_options() before the environment.
#include <attnjit/cache_location.h>

#include <mutex>

namespace attnjit {
namespace {

std::mutex& location_mutex() {
  static std::mutex mutex;
  return mutex;
}

CacheLocation& process_location() {
  static CacheLocation location;
  return location;
}

} // namespace

void set_cache_location(const CacheLocation& location) {
  std::lock_guard lock(location_mutex());
  process_location() = location;
}

CacheLocation cache_location() {
  std::lock_guard lock(location_mutex());
  return process_location();
}

} // namespace attnjit

#include "apps/self_path.h"

#include <attnjit/error.h>

#include <unistd.h>

namespace attnjit::apps {

std::string self_path() {
  std::string path(4096, '\0');
  const ssize_t n = ::readlink("/proc/self/exe", path.data(), path.size() - 1);
  if (n <= 0) throw Error(ErrorKind::internal, "cannot find this binary (/proc/self/exe)");
  path.resize(size_t(n));
  return path;
}

} // namespace attnjit::apps

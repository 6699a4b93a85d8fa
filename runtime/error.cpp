#include <attnjit/error.h>

namespace attnjit {

const char* to_string(ErrorKind kind) {
  switch (kind) {
  case ErrorKind::invalid_argument:
    return "invalid_argument";
  case ErrorKind::unsupported:
    return "unsupported";
  case ErrorKind::no_device:
    return "no_device";
  case ErrorKind::driver:
    return "driver";
  case ErrorKind::compile:
    return "compile";
  case ErrorKind::cache:
    return "cache";
  case ErrorKind::internal:
    return "internal";
  }
  // Reached only through a cast from an out-of-range integer; still a valid C string.
  return "unknown";
}

} // namespace attnjit

// The library's one error type. Library code throws it and never prints or exits;
// apps/ turns it into "attnjit: error: ..." and an exit code.
#pragma once

#include <stdexcept>
#include <string>

namespace attnjit {

enum class ErrorKind {
  invalid_argument, // bad spec, shape, config, pointer or stride
  unsupported,      // valid request that this build cannot serve (head dim, arch)
  no_device,        // no driver, no GPU
  driver,           // a CUDA driver call failed
  compile,          // NVRTC rejected the generated source
  cache,            // SQLite / cache database problem
  internal,
};

const char* to_string(ErrorKind kind);

class Error : public std::runtime_error {
public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

private:
  ErrorKind kind_;
};

} // namespace attnjit

// SHA-256 for binary-cache keys and cubin checksums: stable across builds and machines, which a
// key shipped in a base database needs (std::hash is neither). LLVM Support does the hashing.
#pragma once

#include <string>
#include <string_view>

namespace attnjit::cache {

class Sha256 {
public:
  Sha256& add(std::string_view bytes);
  // A length prefix first, so ("ab", "c") and ("a", "bc") hash differently.
  Sha256& add_field(std::string_view bytes);
  std::string hex(); // 64 lowercase hex digits; the object is spent afterwards

private:
  std::string bytes_; // hashed at hex(): keys and cubins are small, and this keeps LLVM out
                      // of the header
};

std::string sha256_hex(std::string_view bytes);

} // namespace attnjit::cache

// SHA-256 for binary-cache keys and cubin checksums: stable across builds and machines, which a
// key shipped in a base database needs (std::hash is neither).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace attnjit::cache {

class Sha256 {
public:
  Sha256();
  Sha256& add(std::string_view bytes);
  // A length prefix first, so ("ab", "c") and ("a", "bc") hash differently.
  Sha256& add_field(std::string_view bytes);
  std::string hex(); // 64 lowercase hex digits; the object is spent afterwards

private:
  void block(const unsigned char* p);
  std::array<uint32_t, 8> state_;
  std::array<unsigned char, 64> buffer_{};
  size_t buffered_ = 0;
  uint64_t total_bytes_ = 0;
};

std::string sha256_hex(std::string_view bytes);

} // namespace attnjit::cache

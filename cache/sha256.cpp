#include "cache/sha256.h"

#include <fmt/format.h>
#include <llvm/ADT/ArrayRef.h>
#include <llvm/Support/SHA256.h>

namespace attnjit::cache {

Sha256& Sha256::add(std::string_view bytes) {
  bytes_.append(bytes);
  return *this;
}

Sha256& Sha256::add_field(std::string_view bytes) {
  return add(fmt::format("{}:", bytes.size())).add(bytes);
}

std::string Sha256::hex() {
  std::string out;
  const auto* data = reinterpret_cast<const uint8_t*>(bytes_.data());
  for (uint8_t byte : llvm::SHA256::hash(llvm::ArrayRef<uint8_t>(data, bytes_.size())))
    out += fmt::format("{:02x}", byte);
  return out;
}

std::string sha256_hex(std::string_view bytes) {
  return Sha256().add(bytes).hex();
}

} // namespace attnjit::cache

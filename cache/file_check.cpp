#include "cache/file_check.h"

#include <attnjit/error.h>

#include <fmt/format.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sys/stat.h>
#include <system_error>

namespace attnjit::cache {
namespace {

// The SQLite file format (sqlite.org/fileformat.html): a 100-byte header that starts with this
// magic; page size at offset 16, change counter at 24, page count at 28 (valid only when the
// "version-valid-for" number at 92 equals the change counter).
constexpr char kMagic[16] = {'S', 'Q', 'L', 'i', 't', 'e', ' ', 'f',
                             'o', 'r', 'm', 'a', 't', ' ', '3', '\0'};
constexpr size_t kHeaderBytes = 100;

[[noreturn]] void refuse(const std::string& path, const std::string& problem) {
  throw Error(ErrorKind::cache, fmt::format("cache database {}: {}", path, problem));
}

uint32_t big_endian(const unsigned char* p, int bytes) {
  uint32_t value = 0;
  for (int i = 0; i < bytes; ++i)
    value = value << 8 | p[i];
  return value;
}

std::string hex_prefix(const unsigned char* p, size_t n) {
  std::string text;
  for (size_t i = 0; i < n; ++i)
    text += fmt::format("{:02x}", p[i]);
  return text;
}

// A -wal file with frames may hold pages the main file does not have yet.
bool has_wal(const std::string& path) {
  struct stat st {};
  return ::stat((path + "-wal").c_str(), &st) == 0 && st.st_size > 0;
}

struct RawHeader {
  std::array<unsigned char, kHeaderBytes> bytes{};
  size_t got = 0;
};

RawHeader read_raw_header(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) refuse(path, fmt::format("cannot read: {}", std::strerror(errno)));
  RawHeader h;
  in.read(reinterpret_cast<char*>(h.bytes.data()), h.bytes.size());
  h.got = size_t(in.gcount());
  return h;
}

uint32_t page_size_of(const RawHeader& h) {
  const uint32_t size = big_endian(&h.bytes[16], 2);
  return size == 1 ? 65536 : size;
}

} // namespace

FileState inspect_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return FileState::missing;
    refuse(path, fmt::format("cannot stat: {}", std::strerror(errno)));
  }
  if (S_ISDIR(st.st_mode)) refuse(path, "is a directory, not a database file");
  if (!S_ISREG(st.st_mode)) refuse(path, "is not a regular file");
  if (st.st_size == 0) return FileState::empty;

  const RawHeader h = read_raw_header(path);
  const size_t magic_bytes = std::min(h.got, sizeof kMagic);
  if (std::memcmp(h.bytes.data(), kMagic, magic_bytes) != 0)
    refuse(path, fmt::format("not a SQLite database (starts with {}, not \"SQLite format 3\")",
                             hex_prefix(h.bytes.data(), magic_bytes)));
  if (h.got < kHeaderBytes)
    refuse(path,
           fmt::format("truncated: {} bytes, shorter than the 100-byte SQLite header", h.got));
  const uint32_t page_size = page_size_of(h);
  if (page_size < 512 || page_size > 65536 || (page_size & (page_size - 1)) != 0)
    refuse(path, fmt::format("corrupt SQLite header: page size {}", page_size));
  return FileState::sqlite;
}

void check_file_size(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || st.st_size == 0 || has_wal(path)) return;
  const RawHeader h = read_raw_header(path);
  if (h.got < kHeaderBytes) return; // inspect_file() has judged it
  const uint32_t page_size = page_size_of(h);
  const auto size = uint64_t(st.st_size);
  if (size % page_size != 0)
    refuse(path, fmt::format("truncated: {} bytes is not a whole number of {}-byte pages", size,
                             page_size));
  const uint32_t change_counter = big_endian(&h.bytes[24], 4);
  const uint32_t pages = big_endian(&h.bytes[28], 4);
  const bool pages_valid = big_endian(&h.bytes[92], 4) == change_counter && pages != 0;
  if (pages_valid && size < uint64_t(pages) * page_size)
    refuse(path, fmt::format("truncated: {} bytes, but its header says {} pages of {} bytes ({} "
                             "bytes)",
                             size, pages, page_size, uint64_t(pages) * page_size));
}

} // namespace attnjit::cache

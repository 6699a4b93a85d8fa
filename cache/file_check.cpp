#include "cache/file_check.h"

#include <attnjit/error.h>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
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
  int64_t file_size = 0;
};

// The file SQLite opened for the connection's main database; null before it opened one.
sqlite3_file* main_file(sqlite3* db) {
  sqlite3_file* file = nullptr;
  if (sqlite3_file_control(db, "main", SQLITE_FCNTL_FILE_POINTER, &file) != SQLITE_OK)
    return nullptr;
  return file && file->pMethods ? file : nullptr;
}

// The first bytes and the size, through SQLite's file object (file_check.h says why never a
// descriptor of ours).
RawHeader read_raw_header(const std::string& path, sqlite3_file* file) {
  RawHeader h;
  sqlite3_int64 size = 0;
  if (const int rc = file->pMethods->xFileSize(file, &size); rc != SQLITE_OK)
    refuse(path, fmt::format("cannot read its size: {}", sqlite3_errstr(rc)));
  h.file_size = size;
  h.got = size_t(std::min<sqlite3_int64>(size, sqlite3_int64(kHeaderBytes)));
  if (h.got == 0) return h;
  // SQLITE_IOERR_SHORT_READ, should the file shrink meanwhile, fills the rest with zeros.
  const int rc = file->pMethods->xRead(file, h.bytes.data(), int(h.got), 0);
  if (rc != SQLITE_OK && rc != SQLITE_IOERR_SHORT_READ)
    refuse(path, fmt::format("cannot read: {}", sqlite3_errstr(rc)));
  return h;
}

// Before SQLite opens the file for real: a read-only connection that only opens it (it reads
// nothing and creates no -wal or -shm file until a statement runs). Closing it leaves the
// process's locks on the file alone.
RawHeader read_raw_header(const std::string& path) {
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_file* file = rc == SQLITE_OK ? main_file(db) : nullptr;
  if (!file) {
    const int err = db ? sqlite3_system_errno(db) : 0;
    const std::string why = err ? std::strerror(err) : db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close_v2(db);
    refuse(path, fmt::format("cannot read: {}", why));
  }
  try {
    RawHeader h = read_raw_header(path, file);
    sqlite3_close_v2(db);
    return h;
  } catch (...) {
    sqlite3_close_v2(db);
    throw;
  }
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

void check_file_size(sql::Connection& conn) {
  const std::string& path = conn.path();
  sqlite3_file* file = main_file(conn.handle());
  if (!file || has_wal(path)) return;
  const RawHeader h = read_raw_header(path, file);
  if (h.file_size == 0 || h.got < kHeaderBytes) return; // inspect_file() has judged it
  const uint32_t page_size = page_size_of(h);
  const auto size = uint64_t(h.file_size);
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

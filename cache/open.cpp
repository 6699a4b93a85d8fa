// Opening a database file: the checks run in an order that writes nothing until the file is
// known to be ours (a RW open of a foreign file followed by "PRAGMA journal_mode=WAL" would
// already change its header).
#include "cache/file_check.h"
#include "cache/schema.h"

#include <attnjit/error.h>

#include <fmt/format.h>

#include <filesystem>

namespace attnjit::cache {
namespace {

[[noreturn]] void refuse(const std::string& path, const std::string& problem) {
  throw Error(ErrorKind::cache, fmt::format("cache database {}: {}", path, problem));
}

struct Header {
  int64_t application_id = 0;
  int64_t version = 0;
  std::vector<std::string> tables; // a few names, to describe a foreign file
};

Header read_fields(sql::Connection& conn) {
  Header h;
  h.application_id = conn.query_int("PRAGMA application_id");
  h.version = conn.query_int("PRAGMA user_version");
  sql::Statement tables(conn, "SELECT name FROM sqlite_master WHERE type = 'table' "
                              "ORDER BY name LIMIT 6");
  while (tables.step())
    h.tables.push_back(tables.column_text(0));
  return h;
}

// One snapshot: separate reads could straddle another process's migration commit and see its
// tables without its application_id. The file's size is judged under the same read lock.
Header read_header(sql::Connection& conn) {
  if (conn.in_transaction()) return read_fields(conn);
  conn.exec("BEGIN");
  try {
    Header h = read_fields(conn);
    check_file_size(conn);
    conn.exec("COMMIT");
    return h;
  } catch (const Error&) {
    sqlite3_exec(conn.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
    check_file_size(conn); // "truncated: ..." says more than SQLite's "malformed"
    throw;
  }
}

bool is_fresh(const Header& h) {
  return h.application_id == 0 && h.version == 0 && h.tables.empty();
}

// Refuses a file that is not an attnjit database, or one newer than `target_version`.
void check_header(const std::string& path, const Header& h, int target_version) {
  if (is_fresh(h)) return;
  if (h.application_id != kApplicationId) {
    std::string tables;
    for (size_t i = 0; i < h.tables.size(); ++i)
      tables += (i ? ", " : "") + (i == 5 ? std::string("...") : h.tables[i]);
    refuse(path, fmt::format("not an attnjit cache: a SQLite database of another program "
                             "(application_id {:#010x}, attnjit's is {:#010x}; tables: {})",
                             h.application_id, kApplicationId, tables.empty() ? "none" : tables));
  }
  if (h.version > target_version)
    refuse(path, fmt::format("schema version {} is newer than this attnjit ({}) understands "
                             "(up to {}); use a newer attnjit, or another --db",
                             h.version, ATTNJIT_VERSION, target_version));
}

void migrate(sql::Connection& conn, int target_version) {
  sql::WriteTransaction tx(conn);
  // Read again under the write lock: another process may have migrated it meanwhile.
  const Header h = read_header(conn);
  check_header(conn.path(), h, target_version);
  const auto steps = migrations();
  for (int64_t v = h.version; v < target_version; ++v)
    conn.exec(steps[size_t(v)].sql);
  conn.exec(fmt::format("PRAGMA application_id = {}", kApplicationId).c_str());
  conn.exec(fmt::format("PRAGMA user_version = {}", target_version).c_str());
  tx.commit();
}

std::string absolute(const std::string& path) {
  std::error_code ec;
  const auto p = std::filesystem::absolute(path, ec);
  return ec ? path : p.string();
}

} // namespace

const char* to_string(OpenMode mode) {
  switch (mode) {
  case OpenMode::read_write:
    return "read-write";
  case OpenMode::read_only:
    return "read-only";
  case OpenMode::immutable:
    return "immutable";
  }
  return "unknown";
}

std::unique_ptr<sql::Connection> open_database(const std::string& path, OpenMode mode,
                                               int target_version) {
  if (target_version < 1 || target_version > schema_version())
    refuse(path, fmt::format("no schema version {} (this build knows 1 to {})", target_version,
                             schema_version()));
  const FileState state = inspect_file(path);
  if (mode != OpenMode::read_write) {
    if (state == FileState::missing) refuse(path, "does not exist");
    // A zero-byte file is only adopted when it may be written (then it is what SQLite would
    // have created); read-only, it is most likely a failed copy of a real database.
    if (state == FileState::empty) refuse(path, "is empty (0 bytes), not an attnjit cache");
  }

  int flags = mode == OpenMode::read_write ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
                                           : SQLITE_OPEN_READONLY;
  std::string filename = path;
  if (mode == OpenMode::immutable) {
    flags |= SQLITE_OPEN_URI;
    filename = sql::file_uri(absolute(path), "immutable=1");
  }
  auto conn = std::make_unique<sql::Connection>(path, filename, flags);
  const Header h = read_header(*conn);
  check_header(path, h, target_version);

  if (mode != OpenMode::read_write) {
    if (is_fresh(h)) refuse(path, "is an empty SQLite database, not an attnjit cache");
    if (h.version < target_version)
      refuse(path, fmt::format("schema version {} is older than this attnjit's {}, and a {} "
                               "database cannot be migrated; open it writable once, or `attnjit "
                               "cache merge` it into a new file",
                               h.version, target_version, to_string(mode)));
    conn->exec("PRAGMA foreign_keys = ON");
    return conn;
  }

  if (h.application_id != kApplicationId || h.version != target_version)
    migrate(*conn, target_version);
  // After the checks: changing the journal mode writes the header.
  conn->exec("PRAGMA journal_mode = WAL");
  // WAL + NORMAL survives a killed process (not a power cut) and syncs only at checkpoints.
  conn->exec("PRAGMA synchronous = NORMAL");
  conn->exec("PRAGMA foreign_keys = ON");
  return conn;
}

} // namespace attnjit::cache

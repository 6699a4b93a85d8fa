// The database schema as an ordered list of migrations, and opening a file: refusing what is not
// ours (foreign application_id, newer schema, broken file) before anything is written, and
// bringing an older attnjit file up to date in one transaction.
#pragma once

#include "cache/sqlite.h"

#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace attnjit::cache {

// PRAGMA application_id of every attnjit database: "ATJT".
constexpr int64_t kApplicationId = 0x41544A54;

struct Migration {
  const char* summary; // one line, for docs and `cache verify`
  const char* sql;
};

// migrations()[v] takes a database from PRAGMA user_version v to v + 1. Entries are only ever
// appended: a shipped migration never changes.
std::span<const Migration> migrations();

// The newest user_version this build knows (migrations().size()).
int schema_version();

enum class OpenMode {
  read_write, // created when missing (also from a zero-byte file), migrated when older
  read_only,  // SQLITE_OPEN_READONLY: must exist and be current; a live WAL database is fine
  immutable,  // read-only and `immutable=1`: no locks, no -wal/-shm files, works on a
              // read-only filesystem; for base databases nobody writes while we read
};

const char* to_string(OpenMode mode);

// Opens `path` and checks it is an attnjit database of a schema this build knows. read_write
// also creates it, migrates it to `target_version` (tests pass an older one to build old files)
// and switches it to WAL with a busy timeout. Throws Error(cache) naming the file and the
// problem; never writes to a file it refuses, and never deletes or replaces one.
std::unique_ptr<sql::Connection> open_database(const std::string& path, OpenMode mode,
                                               int target_version = schema_version());

} // namespace attnjit::cache

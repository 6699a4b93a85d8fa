// Schema creation, every migration step, and refusing files that are not ours or are newer.
#include "tests/test_cache_support.h"

#include "cache/schema.h"

using namespace attnjit;
using namespace cache_test;

namespace {

std::string text_of(cache::sql::Connection& conn, const char* query) {
  cache::sql::Statement st(conn, query);
  REQUIRE(st.step());
  return st.column_text(0);
}

bool has_table(cache::sql::Connection& conn, const std::string& name) {
  cache::sql::Statement st(conn, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
                                 "name = ?1");
  st.bind(1, name);
  REQUIRE(st.step());
  return st.column_int(0) == 1;
}

// A SQLite file of some other program.
void make_foreign(const std::string& path, int application_id) {
  cache::sql::Connection conn(path, path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  conn.exec(fmt::format("PRAGMA application_id = {}", application_id).c_str());
  conn.exec("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)");
}

constexpr cache::OpenMode kModes[] = {cache::OpenMode::read_write, cache::OpenMode::read_only,
                                      cache::OpenMode::immutable};

// Opening `path` in every mode fails with a message naming the file and `problem`, and leaves
// the file's bytes and its folder as they were.
void check_refused_everywhere(const TempDir& dir, const std::string& path,
                              const std::string& problem) {
  const std::string bytes = read_bytes(path);
  const auto listing = dir.listing();
  for (cache::OpenMode mode : kModes) {
    INFO("mode ", std::string(cache::to_string(mode)));
    const std::string message = error_of([&] { cache::Database db(path, mode); });
    INFO(message);
    CHECK(contains(message, path));
    CHECK(contains(message, problem));
  }
  CHECK(read_bytes(path) == bytes);
  CHECK(dir.listing() == listing);
}

} // namespace

TEST_SUITE("cache.schema") {
  TEST_CASE("a new file gets every table, the application_id, the newest version and WAL") {
    TempDir dir;
    cache::Database db(dir.file("new.db"), cache::OpenMode::read_write);
    auto& conn = db.connection();
    CHECK(conn.query_int("PRAGMA application_id") == cache::kApplicationId);
    CHECK(conn.query_int("PRAGMA user_version") == cache::schema_version());
    CHECK(cache::schema_version() == int(cache::migrations().size()));
    CHECK(text_of(conn, "PRAGMA journal_mode") == "wal");
    for (const char* table : {"devices", "tuning_records", "binaries", "claims"})
      CHECK_MESSAGE(has_table(conn, table), table);
  }

  TEST_CASE("each migration step on its own keeps what the earlier steps stored") {
    TempDir dir;
    const std::string path = dir.file("steps.db");
    const cache::TuningRecord record = sample_record(3);
    const char* new_table[] = {"tuning_records", "binaries", "claims"};
    REQUIRE(std::size(new_table) == cache::migrations().size());
    for (int version = 1; version <= cache::schema_version(); ++version) {
      INFO("migrated to version ", version);
      cache::Database db(cache::open_database(path, cache::OpenMode::read_write, version));
      CHECK(db.connection().query_int("PRAGMA user_version") == version);
      CHECK(has_table(db.connection(), new_table[version - 1]));
      if (version < cache::schema_version())
        CHECK_FALSE(has_table(db.connection(), new_table[version]));
      if (version == 1) db.put(record); // the tables of step 1 exist from here on
      CHECK(db.find(key_of(record)) == record);
    }
  }

  TEST_CASE("an old file is brought up to date when opened read-write, refused read-only") {
    TempDir dir;
    const std::string path = dir.file("old.db");
    cache::Database(cache::open_database(path, cache::OpenMode::read_write, 1))
        .put(sample_record(1));
    const std::string message =
        error_of([&] { cache::Database db(path, cache::OpenMode::read_only); });
    CHECK(contains(message, "older"));
    cache::Database db(path, cache::OpenMode::read_write);
    CHECK(db.connection().query_int("PRAGMA user_version") == cache::schema_version());
    CHECK(db.find(key_of(sample_record(1))) == sample_record(1));
  }

  TEST_CASE("a migration that fails leaves the file at its old version") {
    TempDir dir;
    const std::string path = dir.file("half.db");
    {
      auto conn = cache::open_database(path, cache::OpenMode::read_write, 1);
      conn->exec("CREATE TABLE claims (x)"); // makes the last step's CREATE TABLE fail
    }
    const std::string message =
        error_of([&] { cache::Database db(path, cache::OpenMode::read_write); });
    CHECK(contains(message, "claims"));
    cache::sql::Connection conn(path, path, SQLITE_OPEN_READONLY);
    CHECK(conn.query_int("PRAGMA user_version") == 1);
    CHECK_FALSE(has_table(conn, "binaries")); // step 2 ran, then was rolled back with step 3
  }

  TEST_CASE("a database of another program is refused and left alone") {
    TempDir dir;
    const std::string path = dir.file("photos.db");
    make_foreign(path, 0x1234);
    check_refused_everywhere(dir, path, "another program (application_id 0x00001234");
  }

  TEST_CASE("a SQLite file with tables but no application_id is not ours either") {
    TempDir dir;
    const std::string path = dir.file("plain.db");
    make_foreign(path, 0);
    check_refused_everywhere(dir, path, "tables: photos");
  }

  TEST_CASE("a newer schema is refused, not downgraded") {
    TempDir dir;
    const std::string path = dir.file("future.db");
    {
      cache::Database db(path, cache::OpenMode::read_write);
      db.put(sample_record());
      db.connection().exec(
          fmt::format("PRAGMA user_version = {}", cache::schema_version() + 1).c_str());
      db.connection().exec("PRAGMA journal_mode = DELETE"); // no -wal left to compare
    }
    check_refused_everywhere(
        dir, path, fmt::format("schema version {} is newer", cache::schema_version() + 1));
  }

  TEST_CASE("a zero-byte file becomes a database when writable, and is refused read-only") {
    TempDir dir;
    const std::string path = dir.file("empty.db");
    write_bytes(path, "");
    for (cache::OpenMode mode : {cache::OpenMode::read_only, cache::OpenMode::immutable}) {
      const std::string message = error_of([&] { cache::Database db(path, mode); });
      CHECK(contains(message, path));
      CHECK(contains(message, "empty (0 bytes)"));
    }
    CHECK(read_bytes(path).empty());
    cache::Database db(path, cache::OpenMode::read_write);
    db.put(sample_record());
    CHECK(db.count_records() == 1);
  }

  TEST_CASE("a missing file is created read-write and refused otherwise") {
    TempDir dir;
    for (cache::OpenMode mode : {cache::OpenMode::read_only, cache::OpenMode::immutable})
      CHECK(contains(error_of([&] { cache::Database db(dir.file("none.db"), mode); }),
                     "does not exist"));
    CHECK(dir.listing().empty());
    cache::Database db(dir.file("none.db"), cache::OpenMode::read_write);
    CHECK(fs::exists(dir.file("none.db")));
  }

  TEST_CASE("a folder is not a database") {
    TempDir dir;
    fs::create_directory(dir.file("folder.db"));
    CHECK(contains(
        error_of([&] { cache::Database db(dir.file("folder.db"), cache::OpenMode::read_write); }),
        "is a directory"));
  }
}

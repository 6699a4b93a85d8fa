// Schema creation, every migration step, and refusing files that are not ours or are newer.
#include "tests/test_cache_support.h"

#include "cache/schema.h"

#include <algorithm>

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

bool has_column(cache::sql::Connection& conn, const std::string& table, const std::string& name) {
  cache::sql::Statement st(conn, "SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2");
  st.bind(1, table);
  st.bind(2, name);
  REQUIRE(st.step());
  return st.column_int(0) == 1;
}

// What one migration step adds: a table, or (column non-empty) a column of a table.
struct Added {
  const char* table;
  const char* column = "";
};

bool has(cache::sql::Connection& conn, const Added& added) {
  return *added.column ? has_column(conn, added.table, added.column) : has_table(conn, added.table);
}

// The schema versions that added tuning_records.wgmma (TileConfig::wgmma) and
// tuning_records.warp_specialized (TileConfig::warp_specialized).
constexpr int kWgmmaVersion = 4;
constexpr int kWarpSpecializedVersion = 5;

// Writes `r` as attnjit did before kWgmmaVersion (the tuning_records columns of version 1), or
// with `wgmma_column` as it did from kWgmmaVersion until kWarpSpecializedVersion, into a file at an
// older schema, which Database's statements (they name every current column) cannot use.
void put_old(cache::sql::Connection& conn, const cache::TuningRecord& r, bool wgmma_column) {
  const cache::DeviceFingerprint& d = r.device;
  {
    cache::sql::Statement st(conn, "INSERT INTO devices (sku, cc_major, cc_minor, sm_count, "
                                   "driver_version) VALUES (?1, ?2, ?3, ?4, ?5) "
                                   "ON CONFLICT DO NOTHING");
    st.bind(1, d.sku), st.bind(2, d.cc_major), st.bind(3, d.cc_minor), st.bind(4, d.sm_count);
    st.bind(5, d.driver_version);
    st.run();
  }
  cache::sql::Statement id(conn, "SELECT id FROM devices WHERE sku = ?1 AND driver_version = ?2");
  id.bind(1, d.sku), id.bind(2, d.driver_version);
  REQUIRE(id.step());
  const cache::ShapeBucket bucket = cache::bucket_of(r.spec, r.shape);
  cache::sql::Statement st(
      conn, fmt::format("INSERT INTO tuning_records (sku, device_id, pass, dtype, head_dim_qk, "
                        "head_dim_v, num_heads, num_kv_heads, layout, mask, batch, seqlen_q, "
                        "seqlen_k, bucket_seqlen_q, bucket_seqlen_k, bucket_batch_heads, block_m, "
                        "block_n, num_warps, num_stages, q_in_registers, median_ms, cv, runs, "
                        "tflops, max_error, candidates_tried, candidates_pruned, "
                        "candidates_rejected, noisy, nvrtc_version, template_hash, "
                        "attnjit_version, created_at{}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
                        "?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, "
                        "?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34{})",
                        wgmma_column ? ", wgmma" : "", wgmma_column ? ", ?35" : "")
                .c_str());
  int i = 1;
  const auto next = [&](auto value) { st.bind(i++, value); };
  next(d.sku), next(id.column_int(0));
  next(to_string(r.spec.pass)), next(to_string(r.spec.dtype));
  next(r.spec.head_dim_qk), next(r.spec.head_dim_v), next(r.spec.num_heads);
  next(r.spec.num_kv_heads), next(to_string(r.spec.layout)), next(to_string(r.spec.mask));
  next(r.shape.batch), next(r.shape.seqlen_q), next(r.shape.seqlen_k);
  next(bucket.seqlen_q), next(bucket.seqlen_k), next(bucket.batch_heads);
  next(r.config.block_m), next(r.config.block_n), next(r.config.num_warps);
  next(r.config.num_stages), next(int(r.config.q_in_registers));
  next(r.median_ms), next(r.cv), next(r.runs), next(r.tflops), next(r.max_error);
  next(r.candidates_tried), next(r.candidates_pruned), next(r.candidates_rejected);
  next(int(r.noisy)), next(r.nvrtc_version), next(r.template_hash), next(r.attnjit_version);
  next(r.created_at);
  if (wgmma_column) next(int(r.config.wgmma));
  REQUIRE(i == (wgmma_column ? 36 : 35));
  st.run();
}

void put_before_wgmma(cache::sql::Connection& conn, const cache::TuningRecord& r) {
  put_old(conn, r, false);
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
    cache::TuningRecord record = sample_record(3);
    record.config.q_in_registers = true;
    const Added added[] = {{"tuning_records"},
                           {"binaries"},
                           {"claims"},
                           {"tuning_records", "wgmma"},
                           {"tuning_records", "warp_specialized"}};
    REQUIRE(std::size(added) == cache::migrations().size());
    for (int version = 1; version <= cache::schema_version(); ++version) {
      INFO("migrated to version ", version);
      auto conn = cache::open_database(path, cache::OpenMode::read_write, version);
      CHECK(conn->query_int("PRAGMA user_version") == version);
      CHECK(has(*conn, added[version - 1]));
      if (version < cache::schema_version()) CHECK_FALSE(has(*conn, added[version]));
      if (version == 1) put_before_wgmma(*conn, record); // step 1's tables exist from here on
      CHECK(conn->query_int("SELECT count(*) FROM tuning_records WHERE q_in_registers = 1 AND "
                            "median_ms = 3.5") == 1);
      // Database's statements name every current column: they work once the file is current.
      if (version == cache::schema_version())
        CHECK(cache::Database(std::move(conn)).find(key_of(record)) == record);
    }
  }

  TEST_CASE("an old file is brought up to date when opened read-write, refused read-only") {
    TempDir dir;
    const std::string path = dir.file("old.db");
    put_before_wgmma(*cache::open_database(path, cache::OpenMode::read_write, 1), sample_record(1));
    const std::string message =
        error_of([&] { cache::Database db(path, cache::OpenMode::read_only); });
    CHECK(contains(message, "older"));
    cache::Database db(path, cache::OpenMode::read_write);
    CHECK(db.connection().query_int("PRAGMA user_version") == cache::schema_version());
    CHECK(db.find(key_of(sample_record(1))) == sample_record(1));
  }

  TEST_CASE("a file from before the wgmma column: its records read wgmma = 0 once migrated") {
    REQUIRE(std::string(cache::migrations()[kWgmmaVersion - 1].sql).find("wgmma") !=
            std::string::npos);
    TempDir dir;
    const std::string path = dir.file("before-wgmma.db");
    std::vector<cache::TuningRecord> old;
    for (int n = 0; n < 3; ++n) {
      old.push_back(sample_record(n));
      old.back().config.q_in_registers = n == 1;
    }
    {
      auto conn = cache::open_database(path, cache::OpenMode::read_write, kWgmmaVersion - 1);
      REQUIRE_FALSE(has_column(*conn, "tuning_records", "wgmma"));
      for (const cache::TuningRecord& r : old)
        put_before_wgmma(*conn, r);
    }
    {
      cache::Database db(path, cache::OpenMode::read_write); // migrates
      CHECK(db.connection().query_int("PRAGMA user_version") == cache::schema_version());
      CHECK(db.count_records() == 3);
      for (const cache::TuningRecord& r : old) {
        const std::optional<cache::TuningRecord> found = db.find(key_of(r));
        REQUIRE(found);
        CHECK_FALSE(found->config.wgmma);
        CHECK(*found == r);
      }
      // The migrated file takes the new field like a new one.
      cache::TuningRecord wgmma = sample_record(7);
      wgmma.config = {64, 64, 4, 2, false, true};
      db.put(wgmma);
      CHECK(db.find(key_of(wgmma)) == wgmma);
      // The column holds 0 or 1 only.
      CHECK_THROWS_AS(db.connection().exec("UPDATE tuning_records SET wgmma = 2"), Error);
    }
    cache::Database db(path, cache::OpenMode::read_only);
    CHECK(db.records().size() == 4);
    for (const cache::TuningRecord& r : old)
      CHECK(db.find(key_of(r)) == r);
  }

  TEST_CASE(
      "a file from before the warp_specialized column: its records read false once migrated") {
    REQUIRE(std::string(cache::migrations()[kWarpSpecializedVersion - 1].sql)
                .find("warp_specialized") != std::string::npos);
    TempDir dir;
    const std::string path = dir.file("before-warp-specialized.db");
    std::vector<cache::TuningRecord> old;
    for (int n = 0; n < 4; ++n) {
      old.push_back(sample_record(n));
      old.back().config.q_in_registers = n == 1;
      if (n % 2 == 0) old.back().config = {64 * (n + 2) / 2, 64, 4 * (n + 2) / 2, 2, false, true};
    }
    {
      auto conn =
          cache::open_database(path, cache::OpenMode::read_write, kWarpSpecializedVersion - 1);
      REQUIRE(has_column(*conn, "tuning_records", "wgmma"));
      REQUIRE_FALSE(has_column(*conn, "tuning_records", "warp_specialized"));
      for (const cache::TuningRecord& r : old)
        put_old(*conn, r, true);
    }
    {
      cache::Database db(path, cache::OpenMode::read_write); // migrates
      CHECK(db.connection().query_int("PRAGMA user_version") == cache::schema_version());
      CHECK(db.count_records() == 4);
      for (const cache::TuningRecord& r : old) {
        const std::optional<cache::TuningRecord> found = db.find(key_of(r));
        REQUIRE(found);
        CHECK_FALSE(found->config.warp_specialized);
        CHECK(found->config.wgmma == r.config.wgmma); // the older column is kept as it was
        CHECK(*found == r);
      }
      // The migrated file takes the new field like a new one.
      cache::TuningRecord ws = sample_record(7);
      ws.config = {128, 128, 12, 2, false, true, true};
      db.put(ws);
      CHECK(db.find(key_of(ws)) == ws);
      // The column holds 0 or 1 only.
      CHECK_THROWS_AS(db.connection().exec("UPDATE tuning_records SET warp_specialized = 2"),
                      Error);
    }
    cache::Database db(path, cache::OpenMode::read_only);
    CHECK(db.records().size() == 5);
    for (const cache::TuningRecord& r : old)
      CHECK(db.find(key_of(r)) == r);
  }

  TEST_CASE("every TileConfig field survives put, find, the bucket, records() and record(id)") {
    TempDir dir;
    cache::Database db(dir.file("config.db"), cache::OpenMode::read_write);
    std::vector<cache::TuningRecord> records;
    for (int n = 0; n < 4; ++n) {
      cache::TuningRecord r = sample_record(n);
      r.shape = {1, 4096 - 128 * n, 4096 - 128 * n}; // one bucket, 4096 nearest
      r.config = {64 * (1 + n % 2), 32 << n % 3, 4 << n % 2, 2 + n % 2,
                  n % 2 == 0,       n / 2 == 1,  n == 3};
      records.push_back(r);
      db.put(r);
    }
    for (const cache::TuningRecord& r : records)
      CHECK(db.find(key_of(r)) == r);
    const std::vector<cache::TuningRecord> bucket = db.find_in_bucket(key_of(records[0]));
    REQUIRE(bucket.size() == records.size());
    CHECK(bucket[0] == records[0]);
    for (const cache::StoredRecord& stored : db.records()) {
      CHECK(std::count(records.begin(), records.end(), stored.record) == 1);
      CHECK(db.record(stored.id)->record == stored.record);
    }
    // Replacing a record replaces its config too, wgmma and warp_specialized included.
    records[1].config.wgmma = !records[1].config.wgmma;
    db.put(records[1]);
    CHECK(db.find(key_of(records[1]))->config.wgmma == records[1].config.wgmma);
    records[3].config.warp_specialized = !records[3].config.warp_specialized;
    db.put(records[3]);
    CHECK(db.find(key_of(records[3]))->config.warp_specialized ==
          records[3].config.warp_specialized);
    CHECK_FALSE(records[3].config.warp_specialized);
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

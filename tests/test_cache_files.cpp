// Broken files: truncated, random bytes, a valid header over garbage. Each is refused with the
// file and the problem named, in every open mode, and is neither changed nor given a -wal file.
#include "tests/test_cache_support.h"

#include "cache/layered_cache.h"
#include "cache/maintenance.h"

#include <random>

using namespace attnjit;
using namespace cache_test;

namespace {

// A real database of several pages, in rollback mode so it is one self-contained file.
std::string make_database(const TempDir& dir, const std::string& name) {
  const std::string path = dir.file(name);
  cache::Database db(path, cache::OpenMode::read_write);
  for (int i = 0; i < 200; ++i)
    db.put(sample_record(i));
  db.connection().exec("PRAGMA journal_mode = DELETE");
  return path;
}

std::string random_bytes(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string bytes(n, '\0');
  for (char& c : bytes)
    c = char(rng());
  return bytes;
}

void check_refused(const TempDir& dir, const std::string& path, const std::string& problem) {
  const std::string bytes = read_bytes(path);
  const auto listing = dir.listing();
  for (cache::OpenMode mode :
       {cache::OpenMode::read_write, cache::OpenMode::read_only, cache::OpenMode::immutable}) {
    INFO("mode ", std::string(cache::to_string(mode)));
    // Some damage only shows when pages are read, so read them all.
    const std::string message = error_of([&] {
      cache::Database db(path, mode);
      db.records();
    });
    INFO(message);
    CHECK(contains(message, path));
    CHECK(contains(message, problem));
  }
  CHECK(read_bytes(path) == bytes);
  CHECK(dir.listing() == listing);
}

} // namespace

TEST_SUITE("cache.files") {
  TEST_CASE("a file cut inside the header") {
    TempDir dir;
    const std::string path = make_database(dir, "cut.db");
    write_bytes(path, read_bytes(path).substr(0, 60));
    check_refused(dir, path, "truncated: 60 bytes, shorter than the 100-byte SQLite header");
  }

  TEST_CASE("a file cut inside a page") {
    TempDir dir;
    const std::string path = make_database(dir, "cut.db");
    const std::string bytes = read_bytes(path);
    write_bytes(path, bytes.substr(0, bytes.size() / 2 + 100));
    check_refused(dir, path, "is not a whole number of");
  }

  TEST_CASE("a file cut at a page boundary") {
    TempDir dir;
    const std::string path = make_database(dir, "cut.db");
    const std::string bytes = read_bytes(path);
    REQUIRE(bytes.size() >= 4 * 4096);
    write_bytes(path, bytes.substr(0, 2 * 4096));
    check_refused(dir, path, "but its header says");
  }

  TEST_CASE("random bytes") {
    TempDir dir;
    const std::string path = dir.file("noise.db");
    write_bytes(path, random_bytes(8192, 1));
    check_refused(dir, path, "not a SQLite database");
  }

  TEST_CASE("a SQLite header over random pages") {
    TempDir dir;
    const std::string path = make_database(dir, "garbage.db");
    const std::string bytes = read_bytes(path);
    write_bytes(path, bytes.substr(0, 100) + random_bytes(bytes.size() - 100, 2));
    check_refused(dir, path, "corrupt or not a SQLite database");
  }

  TEST_CASE("verify reports a damaged file and passes a sound one") {
    TempDir dir;
    const std::string good = make_database(dir, "good.db");
    const cache::VerifyReport ok = cache::verify(good, kTemplates);
    CHECK(ok.ok());
    const std::string bad = dir.file("bad.db");
    write_bytes(bad, read_bytes(good).substr(0, 3 * 4096));
    const cache::VerifyReport report = cache::verify(bad, kTemplates);
    REQUIRE_FALSE(report.ok());
    CHECK(contains(report.problems.front(), "truncated"));
  }

  TEST_CASE("a broken user database costs the lookup nothing but a warning") {
    TempDir dir;
    const std::string path = dir.file("user.db");
    write_bytes(path, random_bytes(4096, 3));
    const std::string bytes = read_bytes(path);
    cache::Cache cache({path, "", kTemplates});
    const auto limits = codegen::arch_limits("sm_90a");
    const cache::LookupResult result = cache.lookup(key_of(sample_record()), limits);
    CHECK(result.source == cache::LookupSource::default_config);
    CHECK(result.config == codegen::default_config(sample_record().spec, limits));
    const std::vector<std::string> warnings = cache.take_warnings();
    REQUIRE(warnings.size() == 1);
    CHECK(contains(warnings.front(), path));
    CHECK(contains(warnings.front(), "not a SQLite database"));
    CHECK(cache.take_warnings().empty()); // said once
    CHECK(read_bytes(path) == bytes);     // and the user's file is untouched
  }
}

// The tuning cache through the C API, and where plans look for it (CacheLocation / the
// attnjit_set_cache_location C call). No GPU: lookups name the SKU and arch.
#include "tests/test_cache_support.h"

#include "cache/layered_cache.h"
#include "codegen/embedded_templates.h"
#include "codegen/tile_rules.h"

#include <attnjit/c_api.h>
#include <attnjit/cache_location.h>

using namespace attnjit;
using namespace cache_test;

namespace {

// Records tuned with this build's templates, as `attnjit tune` would write them.
cache::TuningRecord current_record(AttentionShape shape, TileConfig config) {
  cache::TuningRecord r = sample_record();
  r.shape = shape;
  r.config = config;
  r.template_hash = codegen::template_hash();
  return r;
}

void fill(const std::string& path, const std::vector<cache::TuningRecord>& records) {
  cache::Database db(path, cache::OpenMode::read_write);
  for (const cache::TuningRecord& r : records)
    db.put(r);
}

// The C form of KernelSpec{} with `shape`: what sample_record()'s records are keyed on.
attnjit_problem problem_of(AttentionShape shape) {
  attnjit_problem p;
  REQUIRE(attnjit_problem_init(&p) == ATTNJIT_OK);
  p.batch = shape.batch, p.seqlen_q = shape.seqlen_q, p.seqlen_k = shape.seqlen_k;
  return p;
}

bool same(const attnjit_tile_config& c, const TileConfig& config) {
  return c.block_m == config.block_m && c.block_n == config.block_n &&
         c.num_warps == config.num_warps && c.num_stages == config.num_stages &&
         (c.q_in_registers != 0) == config.q_in_registers && (c.wgmma != 0) == config.wgmma &&
         (c.warp_specialized != 0) == config.warp_specialized;
}

// Puts the process's cache location back when a test ends.
struct ResetLocation {
  ~ResetLocation() {
    attnjit_set_cache_location(nullptr, nullptr, nullptr);
    set_cache_location({});
  }
};

const TileConfig kTuned{64, 64, 4, 3, true}; // unlike the default, so a hit is visible

} // namespace

TEST_SUITE("capi.cache") {
  TEST_CASE("lookups go exact, bucket, default, and say which file served") {
    TempDir dir;
    fill(dir.file("user.db"), {current_record({1, 4096, 4096}, kTuned)});
    attnjit_cache* cache = nullptr;
    REQUIRE_MESSAGE(attnjit_cache_open(dir.file("user.db").c_str(), nullptr,
                                       ATTNJIT_CACHE_USER_READ_ONLY, &cache) == ATTNJIT_OK,
                    attnjit_last_error());
    int64_t count = -1;
    REQUIRE(attnjit_cache_record_count(cache, &count) == ATTNJIT_OK);
    CHECK(count == 1);

    attnjit_lookup found{};
    attnjit_problem p = problem_of({1, 4096, 4096});
    REQUIRE(attnjit_cache_lookup(cache, kH100, "sm_90a", &p, &found) == ATTNJIT_OK);
    CHECK(found.source == ATTNJIT_CONFIG_EXACT);
    CHECK(same(found.config, kTuned));
    CHECK(std::string(found.database) == dir.file("user.db"));
    CHECK(std::string(found.warnings).empty());

    p = problem_of({1, 3900, 3900});
    REQUIRE(attnjit_cache_lookup(cache, kH100, "sm_90a", &p, &found) == ATTNJIT_OK);
    CHECK(found.source == ATTNJIT_CONFIG_BUCKET);
    CHECK(same(found.config, kTuned));

    p = problem_of({1, 8192, 8192});
    REQUIRE(attnjit_cache_lookup(cache, kH100, "sm_90a", &p, &found) == ATTNJIT_OK);
    CHECK(found.source == ATTNJIT_CONFIG_DEFAULT);
    CHECK(
        same(found.config, codegen::default_config(KernelSpec{}, codegen::arch_limits("sm_90a"))));
    CHECK(std::string(found.database).empty());

    // Another GPU model has no records: the default.
    p = problem_of({1, 4096, 4096});
    REQUIRE(attnjit_cache_lookup(cache, "NVIDIA A100-SXM4-80GB", "sm_80", &p, &found) ==
            ATTNJIT_OK);
    CHECK(found.source == ATTNJIT_CONFIG_DEFAULT);
    attnjit_cache_close(cache);
  }

  TEST_CASE("the wgmma and warp_specialized flags come back through the C struct as 1") {
    // One warpgroup of 64 query rows; then two computing warpgroups and one that only loads.
    const TileConfig wgmma{64, 64, 4, 2, false, true};
    const TileConfig ws{128, 128, 12, 2, false, true, true};
    for (const TileConfig& config : {wgmma, ws}) {
      INFO(to_string(config));
      // Lookups skip a config the tile rules refuse, so each must be valid.
      const std::string why =
          codegen::why_not(KernelSpec{}, config, codegen::arch_limits("sm_90a"));
      REQUIRE_MESSAGE(why.empty(), why);
      TempDir dir;
      fill(dir.file("user.db"), {current_record({1, 4096, 4096}, config)});
      attnjit_cache* cache = nullptr;
      REQUIRE_MESSAGE(attnjit_cache_open(dir.file("user.db").c_str(), nullptr,
                                         ATTNJIT_CACHE_USER_READ_ONLY, &cache) == ATTNJIT_OK,
                      attnjit_last_error());
      attnjit_lookup found{};
      const attnjit_problem p = problem_of({1, 4096, 4096});
      REQUIRE(attnjit_cache_lookup(cache, kH100, "sm_90a", &p, &found) == ATTNJIT_OK);
      INFO(found.warnings);
      CHECK(found.source == ATTNJIT_CONFIG_EXACT);
      CHECK(found.config.wgmma == 1);
      CHECK(found.config.warp_specialized == (config.warp_specialized ? 1 : 0));
      CHECK(found.config.q_in_registers == 0);
      CHECK(same(found.config, config));
      attnjit_cache_close(cache);
    }
  }

  TEST_CASE("a base database serves under a user database that lacks the key") {
    TempDir dir;
    fill(dir.file("base.db"), {current_record({1, 4096, 4096}, kTuned)});
    attnjit_cache* cache = nullptr;
    REQUIRE_MESSAGE(attnjit_cache_open(dir.file("user.db").c_str(), dir.file("base.db").c_str(), 0,
                                       &cache) == ATTNJIT_OK,
                    attnjit_last_error());
    attnjit_lookup found{};
    const attnjit_problem p = problem_of({1, 4096, 4096});
    REQUIRE(attnjit_cache_lookup(cache, kH100, "sm_90a", &p, &found) == ATTNJIT_OK);
    CHECK(found.source == ATTNJIT_CONFIG_EXACT);
    CHECK(std::string(found.database) == dir.file("base.db"));
    attnjit_cache_close(cache);
    CHECK(fs::exists(dir.file("user.db"))); // opened read-write: created
  }

  TEST_CASE("no database at all: every lookup is the default") {
    attnjit_cache* cache = nullptr;
    REQUIRE(attnjit_cache_open(nullptr, "", 0, &cache) == ATTNJIT_OK);
    int64_t count = -1;
    REQUIRE(attnjit_cache_record_count(cache, &count) == ATTNJIT_OK);
    CHECK(count == 0);
    attnjit_lookup found{};
    const attnjit_problem p = problem_of({1, 4096, 4096});
    REQUIRE(attnjit_cache_lookup(cache, kH100, "sm_90a", &p, &found) == ATTNJIT_OK);
    CHECK(found.source == ATTNJIT_CONFIG_DEFAULT);
    attnjit_cache_close(cache);
  }

  TEST_CASE("a database that cannot be opened is an error naming the file") {
    TempDir dir;
    write_bytes(dir.file("notes.db"), std::string(4096, 'x'));
    attnjit_cache* cache = reinterpret_cast<attnjit_cache*>(0x1);
    CHECK(attnjit_cache_open(nullptr, dir.file("notes.db").c_str(), 0, &cache) ==
          ATTNJIT_ERROR_CACHE);
    CHECK(cache == nullptr);
    std::string message = attnjit_last_error();
    CHECK(contains(message, "attnjit_cache_open: "));
    CHECK(contains(message, dir.file("notes.db")));

    // Read-only: a missing user database is not created, and is an error.
    CHECK(attnjit_cache_open(dir.file("missing.db").c_str(), nullptr, ATTNJIT_CACHE_USER_READ_ONLY,
                             &cache) == ATTNJIT_ERROR_CACHE);
    CHECK(contains(attnjit_last_error(), dir.file("missing.db")));
    CHECK_FALSE(fs::exists(dir.file("missing.db")));
  }

  TEST_CASE("bad arguments to the cache functions") {
    attnjit_cache* cache = nullptr;
    CHECK(attnjit_cache_open(nullptr, nullptr, 0x10, &cache) == ATTNJIT_ERROR_INVALID_ARGUMENT);
    CHECK(contains(attnjit_last_error(), "unknown flags 0x10"));
    CHECK(attnjit_cache_open(nullptr, nullptr, 0, nullptr) == ATTNJIT_ERROR_INVALID_ARGUMENT);
    REQUIRE(attnjit_cache_open(nullptr, nullptr, 0, &cache) == ATTNJIT_OK);
    attnjit_lookup found{};
    attnjit_problem p = problem_of({1, 4096, 4096});
    CHECK(attnjit_cache_lookup(nullptr, kH100, "sm_90a", &p, &found) ==
          ATTNJIT_ERROR_INVALID_ARGUMENT);
    CHECK(contains(attnjit_last_error(), "attnjit_cache_lookup: cache is null"));
    CHECK(attnjit_cache_lookup(cache, kH100, "sm_42", &p, &found) == ATTNJIT_ERROR_UNSUPPORTED);
    CHECK(contains(attnjit_last_error(), "unknown architecture 'sm_42'"));
    p.num_kv_heads = 5;
    CHECK(attnjit_cache_lookup(cache, kH100, "sm_90a", &p, &found) ==
          ATTNJIT_ERROR_INVALID_ARGUMENT);
    CHECK(contains(attnjit_last_error(), "num_kv_heads (5)"));
    CHECK(attnjit_cache_record_count(cache, nullptr) == ATTNJIT_ERROR_INVALID_ARGUMENT);
    attnjit_cache_close(cache);
  }

  TEST_CASE("the host's cache location comes before the environment") {
    ResetLocation reset;
    const char* kSku = "NVIDIA H100 80GB HBM3";
    TempDir dir;
    write_bytes(dir.file("nvidia-h100-80gb-hbm3.db"), ""); // only its existence matters here
    const char *user = nullptr, *base = nullptr;

    // ATTNJIT_CACHE_DB=off (tests/main.cpp) and no base: nothing.
    REQUIRE(attnjit_cache_location(kSku, &user, &base) == ATTNJIT_OK);
    CHECK(std::string(user).empty());
    CHECK(std::string(base).empty());

    REQUIRE(attnjit_set_cache_location(dir.file("mine.db").c_str(), nullptr, dir.path().c_str()) ==
            ATTNJIT_OK);
    REQUIRE(attnjit_cache_location(kSku, &user, &base) == ATTNJIT_OK);
    CHECK(std::string(user) == dir.file("mine.db"));
    CHECK(std::string(base) == dir.file("nvidia-h100-80gb-hbm3.db"));
    // A folder without this GPU's file gives no base, and no warning: not every SKU ships one.
    REQUIRE(attnjit_cache_location("NVIDIA L4", &user, &base) == ATTNJIT_OK);
    CHECK(std::string(base).empty());

    // "" is none; NULL is the environment's choice again.
    REQUIRE(attnjit_set_cache_location("", "/opt/fleet/h100.db", nullptr) == ATTNJIT_OK);
    REQUIRE(attnjit_cache_location(kSku, &user, &base) == ATTNJIT_OK);
    CHECK(std::string(user).empty());
    CHECK(std::string(base) == "/opt/fleet/h100.db");

    // The C++ call, seen by the library's own resolution.
    set_cache_location({std::string("/tmp/x.db"), std::nullopt, std::nullopt});
    CHECK(cache_location().user_db == "/tmp/x.db");
    CHECK(cache::default_cache_options(kSku).user_path == "/tmp/x.db");
    set_cache_location({});
    CHECK(cache::default_cache_options(kSku).user_path.empty()); // ATTNJIT_CACHE_DB=off again

    CHECK(attnjit_cache_location(kSku, nullptr, &base) == ATTNJIT_ERROR_INVALID_ARGUMENT);
  }
}

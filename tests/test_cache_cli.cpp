// `attnjit cache ...` as a user runs it: the built binary on databases made through the API.
#include "tests/test_cache_support.h"

#include "codegen/embedded_templates.h"

#include <cstdio>
#include <regex>

using namespace attnjit;
using namespace cache_test;

namespace {

struct CliResult {
  int exit_code = -1;
  std::string output; // stdout and stderr together
};

// Runs `attnjit cache <args>` through the shell. The arguments are ours, never user input.
CliResult cache_cli(const std::string& args) {
  const std::string command = "'" ATTNJIT_CLI_PATH "' cache " + args + " 2>&1";
  CliResult result;
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE_MESSAGE(pipe != nullptr, "popen failed: ", command);
  char buffer[4096];
  while (size_t n = fread(buffer, 1, sizeof buffer, pipe))
    result.output.append(buffer, n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

// A record of this build's templates, so nothing shows as stale.
cache::TuningRecord current(int n, const std::string& sku = kH100) {
  cache::TuningRecord r = sample_record(n, sku);
  r.template_hash = codegen::template_hash();
  return r;
}

// current(n), with the wgmma path for odd n and warp specialization for n = 3: both values of each
// flag go through each round trip.
cache::TuningRecord mixed(int n) {
  cache::TuningRecord r = current(n);
  r.config.wgmma = n % 2 == 1;
  r.config.warp_specialized = n % 4 == 3;
  return r;
}

std::string gpu_flag() {
  return fmt::format("--gpu='{}'", kH100);
}

} // namespace

TEST_SUITE("cache.cli") {
  TEST_CASE("ls, show and coverage print what the database holds") {
    TempDir dir;
    const std::string db = dir.file("user.db");
    {
      cache::Database d(db, cache::OpenMode::read_write);
      d.put(current(0));
      d.put(current(1, "NVIDIA L4"));
    }
    CliResult r = cache_cli("ls --db " + db);
    INFO(r.output);
    CHECK(r.exit_code == 0);
    CHECK(contains(r.output, db + ": 2 records"));
    CHECK(contains(r.output, "NVIDIA L4"));
    CHECK(contains(r.output, "B=1 Sq=512 Sk=512  ->  block_m=128 block_n=64"));

    r = cache_cli(fmt::format("show {} --seqlen=512 --db {}", gpu_flag(), db));
    CHECK(r.exit_code == 0);
    CHECK(contains(r.output, "candidates  40 tried, 12 pruned, 1 rejected"));
    CHECK(contains(r.output, "kernel      fwd_mha_d128_bf16_m128n64w4s2"));
    CHECK(cache_cli("show 12345 --db " + db).exit_code != 0);

    r = cache_cli(fmt::format("coverage --db {} --sku='NVIDIA L4'", db));
    CHECK(r.exit_code == 0);
    CHECK(contains(r.output, "1 specs on NVIDIA L4"));
    CHECK(contains(r.output, "B=1 Sq=1024 Sk=1024"));
    CHECK_FALSE(contains(r.output, kH100));
  }

  TEST_CASE("explain walks the levels over --db and --base") {
    TempDir dir;
    cache::Database(dir.file("base.db"), cache::OpenMode::read_write).put(current(7)); // Sq=4096
    cache::Database(dir.file("user.db"), cache::OpenMode::read_write).put(current(0));
    const CliResult r =
        cache_cli(fmt::format("explain {} --seqlen=3000 --db {} --base {}", gpu_flag(),
                              dir.file("user.db"), dir.file("base.db")));
    INFO(r.output);
    CHECK(r.exit_code == 0);
    CHECK(contains(r.output, "bucket  Sq 2049..4096 Sk 2049..4096 B*H 17..32"));
    CHECK(contains(r.output, fmt::format("bucket   hit   {}  <- used", dir.file("base.db"))));
    CHECK(contains(r.output, "nearest shape in bucket"));
    CHECK(contains(r.output, "no record for B=1 Sq=3000 Sk=3000"));
  }

  TEST_CASE("export and import round-trip the records") {
    TempDir dir;
    {
      cache::Database d(dir.file("a.db"), cache::OpenMode::read_write);
      for (int i = 0; i < 5; ++i)
        d.put(mixed(i));
    }
    CliResult r =
        cache_cli(fmt::format("export --json --db {} -o {}", dir.file("a.db"), dir.file("a.json")));
    REQUIRE(r.exit_code == 0);
    const std::string exported = read_bytes(dir.file("a.json"));
    CHECK(contains(exported, "\"format\": \"attnjit-cache-records\""));
    CHECK(contains(exported, "\"wgmma\": true"));
    CHECK(contains(exported, "\"wgmma\": false"));
    CHECK(contains(exported, "\"warp_specialized\": true"));
    CHECK(contains(exported, "\"warp_specialized\": false"));
    r = cache_cli(fmt::format("import {} --db {}", dir.file("a.json"), dir.file("b.db")));
    INFO(r.output);
    CHECK(r.exit_code == 0);
    CHECK(contains(r.output, "5 added, 0 identical, 0 conflicts"));
    cache::Database a(dir.file("a.db"), cache::OpenMode::read_only);
    cache::Database b(dir.file("b.db"), cache::OpenMode::read_only);
    REQUIRE(b.count_records() == 5);
    for (int i = 0; i < 5; ++i)
      CHECK(b.find(key_of(current(i))) == mixed(i));

    // An export written before TileConfig::warp_specialized existed has no such key: it reads as
    // false, and wgmma as it was.
    const std::string before_ws =
        std::regex_replace(exported, std::regex(R"(,\s*"warp_specialized":\s*(true|false))"), "");
    REQUIRE_FALSE(contains(before_ws, "warp_specialized"));
    REQUIRE(contains(before_ws, "\"wgmma\": true"));
    write_bytes(dir.file("before_ws.json"), before_ws);
    r = cache_cli(fmt::format("import {} --db {}", dir.file("before_ws.json"), dir.file("d.db")));
    INFO(r.output);
    CHECK(r.exit_code == 0);
    CHECK(contains(r.output, "5 added, 0 identical, 0 conflicts"));
    {
      cache::Database d(dir.file("d.db"), cache::OpenMode::read_only);
      for (int i = 0; i < 5; ++i) {
        const std::optional<cache::TuningRecord> found = d.find(key_of(current(i)));
        REQUIRE(found);
        CHECK_FALSE(found->config.warp_specialized);
        cache::TuningRecord expected = mixed(i);
        expected.config.warp_specialized = false;
        CHECK(*found == expected);
      }
    }

    // An export written before TileConfig::wgmma existed has neither key: both read as false.
    const std::string old_format =
        std::regex_replace(before_ws, std::regex(R"(,\s*"wgmma":\s*(true|false))"), "");
    REQUIRE_FALSE(contains(old_format, "wgmma"));
    write_bytes(dir.file("old.json"), old_format);
    r = cache_cli(fmt::format("import {} --db {}", dir.file("old.json"), dir.file("c.db")));
    INFO(r.output);
    CHECK(r.exit_code == 0);
    CHECK(contains(r.output, "5 added, 0 identical, 0 conflicts"));
    {
      cache::Database c(dir.file("c.db"), cache::OpenMode::read_only);
      for (int i = 0; i < 5; ++i) {
        const std::optional<cache::TuningRecord> found = c.find(key_of(current(i)));
        REQUIRE(found);
        CHECK_FALSE(found->config.wgmma);
        CHECK_FALSE(found->config.warp_specialized);
        CHECK(*found == current(i));
      }
    }
    // Present, it must be a boolean.
    write_bytes(dir.file("wrong.json"),
                std::regex_replace(exported, std::regex(R"("wgmma":\s*true)"), R"("wgmma": 1)"));
    r = cache_cli(fmt::format("import {} --db {}", dir.file("wrong.json"), dir.file("c.db")));
    CHECK(r.exit_code != 0);
    CHECK(contains(r.output, "records[1].config.wgmma: expected true or false"));
    write_bytes(dir.file("wrong_ws.json"),
                std::regex_replace(exported, std::regex(R"("warp_specialized":\s*true)"),
                                   R"("warp_specialized": 1)"));
    r = cache_cli(fmt::format("import {} --db {}", dir.file("wrong_ws.json"), dir.file("c.db")));
    CHECK(r.exit_code != 0);
    CHECK(contains(r.output, "records[3].config.warp_specialized: expected true or false"));

    write_bytes(dir.file("bad.json"), R"({"format": "attnjit-cache-records", "version": 1,
      "records": [{"device": {"sku": "x"}}]})");
    r = cache_cli(fmt::format("import {} --db {}", dir.file("bad.json"), dir.file("b.db")));
    CHECK(r.exit_code != 0);
    CHECK(contains(r.output, "records[0].device.cc_major: expected an integer"));
  }

  TEST_CASE("merge reports conflicts and refuses an existing output") {
    TempDir dir;
    cache::TuningRecord better = current(1);
    better.runs = 500;
    better.config.num_stages = 3;
    cache::Database(dir.file("a.db"), cache::OpenMode::read_write).put(current(1));
    cache::Database(dir.file("b.db"), cache::OpenMode::read_write).put(better);
    const std::string args =
        fmt::format("merge {} {} -o {}", dir.file("a.db"), dir.file("b.db"), dir.file("out.db"));
    CliResult r = cache_cli(args);
    INFO(r.output);
    CHECK(r.exit_code == 0);
    CHECK(contains(r.output, "1 conflicts (0 won by A, 1 by B)"));
    CHECK(contains(r.output, "kept    B (more runs (500 vs 100)): block_m=128 block_n=64 warps=4 "
                             "stages=3"));
    r = cache_cli(args);
    CHECK(r.exit_code != 0);
    CHECK(contains(r.output, "never overwrites"));
  }

  TEST_CASE("verify passes a sound file and fails a broken one; prune removes stale records") {
    TempDir dir;
    cache::TuningRecord stale = current(2);
    stale.template_hash = "ffffffffffffffff";
    {
      cache::Database d(dir.file("ok.db"), cache::OpenMode::read_write);
      d.put(current(0));
      d.put(stale);
    }
    CliResult r = cache_cli("verify " + dir.file("ok.db"));
    INFO(r.output);
    CHECK(r.exit_code == 0);
    CHECK(contains(r.output, dir.file("ok.db") + ": ok"));
    CHECK(contains(r.output, "1 records tuned with other templates"));

    write_bytes(dir.file("noise.db"), std::string(4096, '\x5a'));
    r = cache_cli("verify " + dir.file("noise.db"));
    CHECK(r.exit_code == 1);
    CHECK(contains(r.output,
                   "problem: cache database " + dir.file("noise.db") + ": not a SQLite database"));

    r = cache_cli(fmt::format("prune --db {} --stale-templates --dry-run", dir.file("ok.db")));
    CHECK(contains(r.output, "would remove 1 records"));
    r = cache_cli(fmt::format("prune --db {} --stale-templates", dir.file("ok.db")));
    CHECK(contains(r.output, "removed 1 records"));
    CHECK(cache::Database(dir.file("ok.db"), cache::OpenMode::read_only).count_records() == 1);
    CHECK(cache_cli(fmt::format("prune --db {}", dir.file("ok.db"))).exit_code != 0);
    CHECK(cache_cli(fmt::format("prune --db {} --older-than=soon", dir.file("ok.db"))).exit_code !=
          0);
  }
}

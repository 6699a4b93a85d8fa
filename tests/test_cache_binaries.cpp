// Compiled binaries: stored and fetched by their full key; a stale or damaged entry is detected,
// reported and never returned.
#include "tests/test_cache_support.h"

#include "cache/layered_cache.h"
#include "cache/maintenance.h"
#include "cache/sha256.h"

using namespace attnjit;
using namespace cache_test;

namespace {

cache::BinaryKey sample_key() {
  cache::BinaryKey key;
  key.source = "#include <attnjit/fwd_kernel.cuh>\n// fwd_mha_d128_bf16_m128n64w4s2\n";
  key.name_expressions = {"attnjit::flash_fwd_kernel<attnjit::bf16_t, 128, 128, 64, 4, 2>"};
  key.arch = "sm_90a";
  key.nvrtc_version = "13.0";
  key.options = {"--gpu-architecture=sm_90a", "-std=c++17", "-DNDEBUG"};
  key.template_hash = kTemplates;
  return key;
}

cache::CachedBinary sample_binary() {
  cache::CachedBinary binary;
  binary.cubin.assign(50000, '\x7f');
  binary.cubin[1] = 'E', binary.cubin[2] = 'L', binary.cubin[3] = 'F';
  binary.lowered_names = {"_ZN7attnjit16flash_fwd_kernelI...EEvNS_9FwdParamsE"};
  return binary;
}

} // namespace

TEST_SUITE("cache.binaries") {
  TEST_CASE("SHA-256 matches the FIPS 180-4 examples") {
    CHECK(cache::sha256_hex("") ==
          "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(cache::sha256_hex("abc") ==
          "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(cache::sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    const std::string million(1000000, 'a');
    CHECK(cache::sha256_hex(million) ==
          "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    cache::Sha256 pieces; // the same bytes in uneven pieces
    for (size_t at = 0, step = 1; at < million.size(); at += step, step = step * 3 % 1000 + 1)
      pieces.add(std::string_view(million).substr(at, step));
    CHECK(pieces.hex() == cache::sha256_hex(million));
  }

  TEST_CASE("a binary comes back as stored, and only for its own key") {
    TempDir dir;
    cache::Database db(dir.file("bin.db"), cache::OpenMode::read_write);
    db.put_binary(sample_key(), sample_binary());
    const cache::BinaryLookup found = db.find_binary(sample_key());
    REQUIRE(found.binary);
    CHECK(found.binary->cubin == sample_binary().cubin);
    CHECK(found.binary->lowered_names == sample_binary().lowered_names);
    CHECK(found.stale.empty());

    cache::BinaryKey other = sample_key();
    other.source += "// another kernel\n";
    const cache::BinaryLookup miss = db.find_binary(other);
    CHECK_FALSE(miss.binary);
    CHECK(miss.stale.empty()); // a different kernel is a plain miss
  }

  TEST_CASE("another template hash, NVRTC version or option list makes an entry stale") {
    TempDir dir;
    cache::Database db(dir.file("bin.db"), cache::OpenMode::read_write);
    db.put_binary(sample_key(), sample_binary());

    cache::BinaryKey templates = sample_key();
    templates.template_hash = "fedcba9876543210";
    cache::BinaryKey nvrtc = sample_key();
    nvrtc.nvrtc_version = "13.1";
    cache::BinaryKey options = sample_key();
    options.options.push_back("-lineinfo");
    const std::pair<cache::BinaryKey, const char*> cases[] = {
        {templates, "built with templates 0123456789abcdef, this build has fedcba9876543210"},
        {nvrtc, "built by NVRTC 13.0, this is NVRTC 13.1"},
        {options, "built with options [--gpu-architecture=sm_90a -std=c++17 -DNDEBUG], now "
                  "[--gpu-architecture=sm_90a -std=c++17 -DNDEBUG -lineinfo]"},
    };
    for (const auto& [key, why] : cases) {
      const cache::BinaryLookup lookup = db.find_binary(key);
      CHECK_FALSE(lookup.binary);
      CHECK(lookup.stale == why);
    }
  }

  TEST_CASE("a row whose fields were edited under its key is stale, a changed cubin damaged") {
    TempDir dir;
    const std::string path = dir.file("bin.db");
    {
      cache::Database db(path, cache::OpenMode::read_write);
      db.put_binary(sample_key(), sample_binary());
      db.connection().exec("UPDATE binaries SET cubin = zeroblob(50000)");
      const cache::BinaryLookup damaged = db.find_binary(sample_key());
      CHECK_FALSE(damaged.binary);
      CHECK(contains(damaged.stale, "does not match its checksum"));
    }
    const cache::VerifyReport report = cache::verify(path, kTemplates);
    REQUIRE(report.problems.size() == 1);
    CHECK(contains(report.problems.front(), "does not match its checksum"));

    cache::Database db(path, cache::OpenMode::read_write);
    db.put_binary(sample_key(), sample_binary());
    db.connection().exec("UPDATE binaries SET template_hash = 'aaaaaaaaaaaaaaaa'");
    const cache::BinaryLookup edited = db.find_binary(sample_key());
    CHECK_FALSE(edited.binary);
    CHECK(contains(edited.stale, "built with templates aaaaaaaaaaaaaaaa"));
    CHECK_FALSE(cache::verify(path, kTemplates).ok()); // the key no longer matches the fields
  }

  TEST_CASE("the layered cache serves a base database's cubin and stores new ones in the user's") {
    TempDir dir;
    cache::Database(dir.file("base.db"), cache::OpenMode::read_write)
        .put_binary(sample_key(), sample_binary());
    cache::Cache cache({dir.file("user.db"), dir.file("base.db"), kTemplates});
    CHECK(cache.find_binary(sample_key()).binary);

    cache::BinaryKey stale = sample_key();
    stale.nvrtc_version = "14.0";
    const cache::BinaryLookup lookup = cache.find_binary(stale);
    CHECK_FALSE(lookup.binary);
    CHECK(contains(lookup.stale, "built by NVRTC 13.0"));
    CHECK(contains(lookup.stale, dir.file("base.db")));

    CHECK(cache.put_binary(stale, sample_binary()));
    CHECK(cache.find_binary(stale).binary);
    CHECK_FALSE(cache.base()->find_binary(stale).binary);
  }
}

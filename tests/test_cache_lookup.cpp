// Lookup order (exact, bucket, default), explain, and the read-only base under a user database.
#include "tests/test_cache_support.h"

#include "cache/layered_cache.h"

#include <fcntl.h>
#include <sys/stat.h>

using namespace attnjit;
using namespace cache_test;

namespace {

const codegen::ArchLimits kHopper = codegen::arch_limits("sm_90a");

cache::TuningRecord record_for(AttentionShape shape, TileConfig config, int n = 0) {
  cache::TuningRecord r = sample_record(n);
  r.shape = shape;
  r.config = config;
  return r;
}

cache::RecordKey key_for(AttentionShape shape) {
  return {kH100, KernelSpec{}, shape};
}

// Writes `records` into a new database at `path`; closing it leaves one self-contained file.
void fill(const std::string& path, const std::vector<cache::TuningRecord>& records) {
  cache::Database db(path, cache::OpenMode::read_write);
  for (const cache::TuningRecord& r : records)
    db.put(r);
}

const TileConfig kA{128, 64, 4, 2, false}, kB{128, 128, 8, 2, false}, kC{64, 64, 4, 3, true};

} // namespace

TEST_SUITE("cache.lookup") {
  TEST_CASE("the bucket rounds sequence lengths and batch * heads up to powers of two") {
    KernelSpec spec;
    spec.num_heads = 12;
    CHECK(cache::bucket_of(spec, {3, 1000, 4096}) == cache::ShapeBucket{1024, 4096, 64});
    CHECK(cache::bucket_of(spec, {1, 1, 0}) == cache::ShapeBucket{1, 0, 16});
    CHECK(cache::to_string(cache::bucket_of(spec, {1, 3000, 4097})) ==
          "Sq 2049..4096 Sk 4097..8192 B*H 9..16");
  }

  TEST_CASE("exact, then the nearest shape of the bucket, then the default") {
    TempDir dir;
    fill(dir.file("user.db"), {record_for({1, 4096, 4096}, kB), record_for({1, 3000, 3000}, kC)});
    cache::Cache cache({dir.file("user.db"), "", kTemplates});

    const cache::LookupResult exact = cache.lookup(key_for({1, 4096, 4096}), kHopper);
    CHECK(exact.source == cache::LookupSource::exact);
    CHECK(exact.config == kB);
    CHECK(exact.database == dir.file("user.db"));

    // 3900 is nearer 4096 than 3000; both are in the 2049..4096 bucket.
    const cache::LookupResult bucket = cache.lookup(key_for({1, 3900, 3900}), kHopper);
    CHECK(bucket.source == cache::LookupSource::bucket);
    CHECK(bucket.config == kB);
    CHECK(cache.lookup(key_for({1, 2500, 2500}), kHopper).config == kC);

    const cache::LookupResult fallback = cache.lookup(key_for({1, 8192, 8192}), kHopper);
    CHECK(fallback.source == cache::LookupSource::default_config);
    CHECK(fallback.config == codegen::default_config(KernelSpec{}, kHopper));
    CHECK_FALSE(fallback.record);
    CHECK(cache.take_warnings().empty());
  }

  TEST_CASE("explain says why each level missed") {
    TempDir dir;
    cache::TuningRecord other_gpu = record_for({1, 4096, 4096}, kA);
    other_gpu.device.sku = "NVIDIA A100-SXM4-80GB";
    KernelSpec causal;
    causal.mask = Mask::causal;
    cache::TuningRecord other_spec = record_for({1, 1024, 1024}, kA);
    other_spec.spec = causal;
    fill(dir.file("user.db"), {other_gpu, other_spec, record_for({1, 1024, 1024}, kA)});
    cache::Cache cache({dir.file("user.db"), "", kTemplates});

    auto steps = cache.explain({"NVIDIA L4", KernelSpec{}, {1, 4096, 4096}}, kHopper);
    REQUIRE(steps.size() == 3);
    CHECK(contains(steps[0].reason, "no records for GPU 'NVIDIA L4' (3 for other GPUs)"));
    CHECK(contains(steps[1].reason, "no tuned shape of this spec"));
    CHECK(steps[2].level == cache::LookupSource::default_config);
    CHECK(steps[2].used);

    KernelSpec fp16;
    fp16.dtype = DType::fp16;
    steps = cache.explain({kH100, fp16, {1, 4096, 4096}}, kHopper);
    CHECK(contains(steps[0].reason, "no records for this spec on 'NVIDIA H100 80GB HBM3' (2 for "
                                    "other specs)"));

    steps = cache.explain(key_for({1, 4096, 4096}), kHopper);
    CHECK(contains(steps[0].reason, "no record for B=1 Sq=4096 Sk=4096; 1 shapes of this spec "
                                    "are tuned, nearest: B=1 Sq=1024 Sk=1024"));
    CHECK(contains(steps[1].reason, "in bucket Sq 2049..4096 Sk 2049..4096 B*H 17..32"));

    steps = cache.explain(key_for({1, 1000, 1000}), kHopper);
    CHECK_FALSE(steps[0].hit);
    CHECK(steps[1].hit);
    CHECK(steps[1].used);
    CHECK(contains(steps[1].reason, "nearest shape in bucket"));
    CHECK(steps[2].hit); // the default is always there, just not used
    CHECK_FALSE(steps[2].used);
  }

  TEST_CASE("records of other templates, or with configs that cannot run, are skipped") {
    TempDir dir;
    cache::TuningRecord stale = record_for({1, 4096, 4096}, kB);
    stale.template_hash = "ffffffffffffffff";
    // 96 rows cannot be split over 4 warps of 16-row MMA tiles.
    cache::TuningRecord broken = record_for({1, 2048, 2048}, {96, 64, 4, 2, false});
    fill(dir.file("user.db"), {stale, broken});
    cache::Cache cache({dir.file("user.db"), "", kTemplates});

    CHECK(cache.lookup(key_for({1, 4096, 4096}), kHopper).source ==
          cache::LookupSource::default_config);
    auto steps = cache.explain(key_for({1, 4096, 4096}), kHopper);
    CHECK(contains(steps[0].reason, "tuned with templates ffffffffffffffff"));
    CHECK(contains(steps[1].reason, "all skipped"));
    steps = cache.explain(key_for({1, 2048, 2048}), kHopper);
    CHECK(contains(steps[0].reason, "cannot run on sm_90a"));
  }

  TEST_CASE("a backward record serves the backward spec, deterministic or not, never the forward") {
    // What BackwardPlan's lookup (codegen/plan_kernel.cpp) sees for a tuned backward key.
    TempDir dir;
    KernelSpec bwd;
    bwd.pass = Pass::backward;
    const TileConfig tuned{32, 64, 4, 2, false};
    REQUIRE(tuned != codegen::default_config(bwd, kHopper));
    cache::TuningRecord record = record_for({1, 4096, 4096}, tuned);
    record.spec = bwd;
    // Three stages cannot run the backward (its Q/dO ring has two): skipped, never served.
    cache::TuningRecord unrunnable = record_for({1, 1024, 1024}, {64, 128, 8, 3, false});
    unrunnable.spec = bwd;
    fill(dir.file("user.db"), {record, unrunnable});
    cache::Cache cache({dir.file("user.db"), "", kTemplates});

    const cache::LookupResult exact = cache.lookup({kH100, bwd, {1, 4096, 4096}}, kHopper);
    CHECK(exact.source == cache::LookupSource::exact);
    CHECK(exact.config == tuned);
    KernelSpec deterministic = bwd;
    deterministic.deterministic = true; // not a key column: the dK/dV kernel's config serves both
    CHECK(cache.lookup({kH100, deterministic, {1, 4096, 4096}}, kHopper).config == tuned);
    const cache::LookupResult bucket = cache.lookup({kH100, bwd, {1, 3000, 3000}}, kHopper);
    CHECK(bucket.source == cache::LookupSource::bucket);
    CHECK(bucket.config == tuned);

    const cache::LookupResult forward = cache.lookup(key_for({1, 4096, 4096}), kHopper);
    CHECK(forward.source == cache::LookupSource::default_config);
    CHECK(forward.config == codegen::default_config(KernelSpec{}, kHopper));

    const cache::LookupResult skipped = cache.lookup({kH100, bwd, {1, 1024, 1024}}, kHopper);
    CHECK(skipped.source == cache::LookupSource::default_config);
    CHECK(skipped.config == codegen::default_config(bwd, kHopper));
    const auto steps = cache.explain({kH100, bwd, {1, 1024, 1024}}, kHopper);
    CHECK(contains(steps[0].reason, "num_stages 3"));
  }

  TEST_CASE("the user's record wins over the base's, level by level") {
    TempDir dir;
    fill(dir.file("base.db"), {record_for({1, 4096, 4096}, kA), record_for({1, 2048, 2048}, kA),
                               record_for({1, 1024, 1024}, kA)});
    fill(dir.file("user.db"), {record_for({1, 4096, 4096}, kB), record_for({1, 1000, 1000}, kC)});
    cache::Cache cache({dir.file("user.db"), dir.file("base.db"), kTemplates});

    CHECK(cache.lookup(key_for({1, 4096, 4096}), kHopper).config == kB); // both exact: user
    const auto from_base = cache.lookup(key_for({1, 2048, 2048}), kHopper);
    CHECK(from_base.config == kA);
    CHECK(from_base.database == dir.file("base.db"));
    // The base's exact record beats the user's bucket-mate: a closer match, not a layer, wins.
    CHECK(cache.lookup(key_for({1, 1024, 1024}), kHopper).config == kA);
    CHECK(cache.lookup(key_for({1, 900, 900}), kHopper).config == kC); // bucket: user first
  }

  TEST_CASE("a read-only base in a read-only folder: lookups work and nothing is written there") {
    TempDir dir;
    const fs::path base_dir = dir.path() / "base";
    fs::create_directory(base_dir);
    const std::string base = (base_dir / "h100.db").string();
    fill(base, {record_for({1, 4096, 4096}, kA)});
    ::chmod(base.c_str(), 0444);
    ::chmod(base_dir.c_str(), 0555);
    const std::string bytes = read_bytes(base);
    const auto before = TempDir::listing_of(base_dir);

    {
      cache::Cache cache({dir.file("user.db"), base, kTemplates});
      CHECK(cache.take_warnings().empty());
      CHECK(cache.lookup(key_for({1, 4096, 4096}), kHopper).config == kA);
      cache.put(record_for({1, 2048, 2048}, kB)); // goes to the user database
      CHECK(cache.lookup(key_for({1, 2048, 2048}), kHopper).database == dir.file("user.db"));
      CHECK(cache.base()->count_records() == 1);
    }
    // SQLITE_OPEN_READONLY + immutable=1 must not create -wal, -shm or -journal files, even where
    // the folder would allow it (root ignores the mode bits, so this is what shows it).
    CHECK(TempDir::listing_of(base_dir) == before);
    CHECK(read_bytes(base) == bytes);
    if (::geteuid() == 0) {
      MESSAGE("running as root: the folder's mode bits do not stop writes, so only the absence "
              "of new files is checked, not that a write would have failed");
    } else {
      const std::string probe = (base_dir / "probe").string();
      CHECK(::creat(probe.c_str(), 0644) < 0); // the folder really is read-only to us
    }
  }

  TEST_CASE("no user database: the base alone serves, and the lookup says so once") {
    TempDir dir;
    fill(dir.file("base.db"), {record_for({1, 4096, 4096}, kA)});
    write_bytes(dir.file("not-a-folder"), "x");
    const std::string user = dir.file("not-a-folder/cache.db"); // cannot ever be created
    cache::Cache cache({user, dir.file("base.db"), kTemplates});
    const std::vector<std::string> warnings = cache.take_warnings();
    REQUIRE(warnings.size() == 1);
    CHECK(contains(warnings.front(), user));
    CHECK(contains(warnings.front(), "working from the base database"));
    CHECK(cache.lookup(key_for({1, 4096, 4096}), kHopper).config == kA);
    CHECK(cache.take_warnings().empty());
    CHECK(cache.user() == nullptr);
    CHECK_FALSE(cache.put_binary({}, {}));
    CHECK(contains(error_of([&] { cache.put(sample_record()); }), "no writable user database"));
  }

  TEST_CASE("default paths follow the environment") {
    // Put back whatever the caller had set.
    struct Saved {
      const char* name;
      std::optional<std::string> value;
      ~Saved() { value ? ::setenv(name, value->c_str(), 1) : ::unsetenv(name); }
    };
    const auto save = [](const char* name) {
      const char* v = std::getenv(name);
      return Saved{name, v ? std::optional<std::string>(v) : std::nullopt};
    };
    const Saved cache_db = save("ATTNJIT_CACHE_DB"), base_db = save("ATTNJIT_BASE_DB"),
                base_dir = save("ATTNJIT_BASE_DIR");
    ::unsetenv("ATTNJIT_BASE_DIR");
    ::setenv("ATTNJIT_CACHE_DB", "/somewhere/my.db", 1);
    ::setenv("ATTNJIT_BASE_DB", "/opt/attnjit/h100.db", 1);
    cache::CacheOptions o = cache::default_cache_options(kH100);
    CHECK(o.user_path == "/somewhere/my.db");
    CHECK(o.base_path == "/opt/attnjit/h100.db");
    ::setenv("ATTNJIT_CACHE_DB", "off", 1);
    ::unsetenv("ATTNJIT_BASE_DB");
    o = cache::default_cache_options(kH100);
    CHECK(o.user_path.empty());
    CHECK(o.base_path.empty());
    CHECK(cache::sku_slug(kH100) == "nvidia-h100-80gb-hbm3");
  }
}

// Merge (the better-measured record wins, conflicts reported), prune and coverage.
#include "tests/test_cache_support.h"

#include "cache/maintenance.h"

using namespace attnjit;
using namespace cache_test;

namespace {

cache::Verdict verdict(const cache::TuningRecord& a, const cache::TuningRecord& b) {
  return cache::better_measured(a, b, kTemplates);
}

} // namespace

TEST_SUITE("cache.maintenance") {
  TEST_CASE("the better-measured rule, criterion by criterion") {
    const cache::TuningRecord base = sample_record();
    cache::TuningRecord other = base;
    CHECK(verdict(base, other).rule == "identical");

    other.config.block_n = 128; // same measurements, other winner: a tie keeps the first
    CHECK_FALSE(verdict(base, other).incoming_wins);
    CHECK(verdict(base, other).rule == "tie, the first one is kept");

    other.created_at = base.created_at + 10;
    CHECK(verdict(base, other).incoming_wins);
    CHECK(verdict(base, other).rule == "newer");

    other.cv = base.cv * 2; // lower spread outranks newer
    CHECK_FALSE(verdict(base, other).incoming_wins);
    CHECK(verdict(base, other).rule == "lower spread (cv 0.0100 vs 0.0200)");

    other.runs = base.runs + 1; // more runs outrank spread
    CHECK(verdict(base, other).incoming_wins);
    CHECK(verdict(base, other).rule == "more runs (101 vs 100)");

    other.noisy = true; // a clean measurement outranks more runs
    CHECK_FALSE(verdict(base, other).incoming_wins);
    CHECK(verdict(base, other).rule == "not noisy");

    cache::TuningRecord stale = base;
    stale.template_hash = "ffffffffffffffff";
    stale.runs = 10000; // the current templates outrank everything
    CHECK(verdict(stale, other).incoming_wins);
    CHECK(verdict(stale, other).rule == "tuned with this build's templates");
  }

  TEST_CASE("merge A B -o OUT: union of both, conflicts resolved and listed") {
    TempDir dir;
    cache::TuningRecord shared_a = sample_record(1), shared_b = sample_record(1);
    shared_b.config = {64, 64, 4, 2, true, true, true}; // every config field travels
    shared_b.runs = 300;                                // B measured it better
    cache::TuningRecord kept_a = sample_record(2), lost_b = sample_record(2);
    lost_b.config = {128, 128, 8, 2, false};
    lost_b.noisy = true;
    {
      cache::Database a(dir.file("a.db"), cache::OpenMode::read_write);
      for (const auto& r : {sample_record(0), shared_a, kept_a, sample_record(5)})
        a.put(r);
      a.put_binary({"kernel a", {}, "sm_90a", "13.0", {}, kTemplates}, {{'a'}, {"a"}});
      cache::Database b(dir.file("b.db"), cache::OpenMode::read_write);
      for (const auto& r : {shared_b, lost_b, sample_record(5), sample_record(7)})
        b.put(r);
      b.put_binary({"kernel b", {}, "sm_90a", "13.0", {}, kTemplates}, {{'b'}, {"b"}});
    }
    const cache::MergeReport report =
        cache::merge_files(dir.file("a.db"), dir.file("b.db"), dir.file("out.db"), kTemplates);
    CHECK(report.added == 5); // 4 from A, record 7 from B
    CHECK(report.identical == 1);
    CHECK(report.replaced == 1);
    CHECK(report.kept == 1);
    CHECK(report.binaries_added == 2);
    REQUIRE(report.conflicts.size() == 2);
    CHECK(report.conflicts[0].incoming_kept);
    CHECK(report.conflicts[0].kept == shared_b);
    CHECK(report.conflicts[0].rule == "more runs (300 vs 100)");
    CHECK_FALSE(report.conflicts[1].incoming_kept);
    CHECK(report.conflicts[1].kept == kept_a);
    CHECK(report.conflicts[1].rule == "not noisy");

    cache::Database out(dir.file("out.db"), cache::OpenMode::read_only);
    CHECK(out.count_records() == 5);
    CHECK(out.find(key_of(shared_b)) == shared_b);
    CHECK(out.find(key_of(kept_a)) == kept_a);
    CHECK(out.find_binary({"kernel b", {}, "sm_90a", "13.0", {}, kTemplates}).binary);
  }

  TEST_CASE("merge never writes over an existing file") {
    TempDir dir;
    cache::Database(dir.file("a.db"), cache::OpenMode::read_write).put(sample_record());
    write_bytes(dir.file("out.db"), "precious");
    const std::string message = error_of([&] {
      cache::merge_files(dir.file("a.db"), dir.file("a.db"), dir.file("out.db"), kTemplates);
    });
    CHECK(contains(message, "never overwrites"));
    CHECK(read_bytes(dir.file("out.db")) == "precious");
  }

  TEST_CASE("prune by age, by SKU and by template; AND when combined") {
    TempDir dir;
    cache::Database db(dir.file("p.db"), cache::OpenMode::read_write);
    cache::TuningRecord old_h100 = sample_record(0), new_h100 = sample_record(1);
    old_h100.created_at = 1000, new_h100.created_at = 9000;
    cache::TuningRecord old_a100 = sample_record(2, "NVIDIA A100-SXM4-80GB");
    old_a100.created_at = 1000;
    cache::TuningRecord stale = sample_record(3);
    stale.created_at = 9000;
    stale.template_hash = "ffffffffffffffff";
    for (const auto& r : {old_h100, new_h100, old_a100, stale})
      db.put(r);
    db.put_binary({"stale kernel", {}, "sm_90a", "13.0", {}, "ffffffffffffffff"}, {{'x'}, {}});

    const int64_t now = 10000;
    CHECK_THROWS_AS(cache::prune(db, {}, now), Error);
    cache::PruneReport r = cache::prune(db, {5000, kH100, false, kTemplates}, now);
    CHECK(r.records == 1); // old and H100: old_a100 is spared
    CHECK_FALSE(db.find(key_of(old_h100)));
    CHECK(r.binaries == 0); // a SKU filter leaves binaries alone

    r = cache::prune(db, {std::nullopt, "", true, kTemplates}, now);
    CHECK(r.records == 1);
    CHECK(r.binaries == 1);
    CHECK_FALSE(db.find(key_of(stale)));

    r = cache::prune(db, {std::nullopt, "NVIDIA A100-SXM4-80GB", false, kTemplates}, now);
    CHECK(r.records == 1);
    CHECK(r.devices == 1); // the A100 fingerprint has no records left
    CHECK(db.count_records() == 1);
  }

  TEST_CASE("coverage groups shapes by GPU and spec") {
    TempDir dir;
    cache::Database db(dir.file("c.db"), cache::OpenMode::read_write);
    KernelSpec causal;
    causal.mask = Mask::causal;
    cache::TuningRecord c = sample_record(4);
    c.spec = causal;
    for (const auto& r : {sample_record(0), sample_record(1), c, sample_record(0, "NVIDIA L4")})
      db.put(r);
    const std::vector<cache::CoverageEntry> all = cache::coverage(db, "");
    REQUIRE(all.size() == 3);
    const std::vector<cache::CoverageEntry> h100 = cache::coverage(db, kH100);
    REQUIRE(h100.size() == 2);
    CHECK(h100[0].spec.mask == Mask::causal); // "causal" sorts before "none"
    CHECK(h100[1].shapes.size() == 2);
    CHECK(h100[1].shapes[0] == sample_record(0).shape);
  }
}

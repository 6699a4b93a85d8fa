// Plans and the tuning database together, on the device: where the config comes from (exact,
// bucket, default, tuned on a miss), and a warm process loading the cubin from the database
// instead of NVRTC.
#include "cache/database.h"
#include "codegen/embedded_templates.h"
#include "tests/gpu_harness.h"
#include "tests/test_tuner_support.h"
#include "tuner/reference.h"

#include <attnjit/cache.h>
#include <attnjit/device.h>
#include <attnjit/plan.h>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <unistd.h>

using namespace attnjit;

namespace {

// Points ATTNJIT_CACHE_DB at a fresh file for one test, and back to "off" after.
struct ScopedDatabase {
  std::string path;
  ScopedDatabase() {
    path = (std::filesystem::temp_directory_path() /
            fmt::format("attnjit-plan-cache-{}-{}.db", getpid(), rand()))
               .string();
    setenv("ATTNJIT_CACHE_DB", path.c_str(), 1);
  }
  ~ScopedDatabase() {
    setenv("ATTNJIT_CACHE_DB", "off", 1);
    for (const char* suffix : {"", "-wal", "-shm"})
      std::filesystem::remove(path + suffix);
  }
};

AttentionProblem small_problem(int64_t seqlen) {
  AttentionProblem p;
  p.spec.head_dim_qk = p.spec.head_dim_v = 64;
  p.spec.num_heads = p.spec.num_kv_heads = 4;
  p.shape = {2, seqlen, seqlen};
  return p;
}

void check_output(const ForwardPlan& plan) {
  const uint64_t seed = test::test_seed();
  INFO("seed ", seed);
  const auto data = tuner::random_inputs(plan.problem(), seed);
  test::DeviceAttention device = test::upload(data);
  plan.run(device.args, nullptr);
  test::synchronize();
  const auto rows = tuner::all_rows(plan.problem());
  const auto result = tuner::compare_forward(
      tuner::reference_forward(data, rows), tuner::plain_forward(data, rows),
      test::gather(device, rows), 2.0, tuner::default_abs_floor(plan.problem().spec.dtype));
  CHECK_MESSAGE(result.passed, result.summary);
}

} // namespace

TEST_SUITE("gpu.plan_cache") {
  TEST_CASE("a tuned record picks the config; a warm plan loads its cubin from the database" *
            test::needs_gpu()) {
    ScopedDatabase db;
    const DeviceInfo gpu = query_device(0);
    const AttentionProblem problem = small_problem(200);

    const ForwardPlan cold(problem);
    CHECK(cold.config_source() == cache::LookupSource::default_config);
    CHECK_FALSE(cold.binary_from_cache()); // compiled, then stored
    const ForwardPlan warm(problem);
    CHECK(warm.binary_from_cache());
    check_output(warm);

    // A record for this exact shape, with a config unlike the default, wins.
    const TileConfig tuned{64, 32, 4, 3, true};
    REQUIRE(tuned != cold.config());
    cache::TuningRecord record;
    record.device = cache::fingerprint_of(gpu);
    record.spec = problem.spec;
    record.shape = problem.shape;
    record.config = tuned;
    record.runs = 10;
    record.nvrtc_version = nvrtc_version();
    record.template_hash = codegen::template_hash();
    {
      cache::Database database(db.path, cache::OpenMode::read_write);
      database.put(record);
    }
    const ForwardPlan exact(problem);
    CHECK(exact.config_source() == cache::LookupSource::exact);
    CHECK(exact.config() == tuned);
    check_output(exact);

    // Another shape in the same bucket (seqlens round up to 256) takes the same record.
    const ForwardPlan bucket(small_problem(250));
    CHECK(bucket.config_source() == cache::LookupSource::bucket);
    CHECK(bucket.config() == tuned);
    check_output(bucket);

    // An explicit config bypasses the lookup.
    const ForwardPlan given(problem, TileConfig{128, 64, 4, 2, false});
    CHECK_FALSE(given.config_source().has_value());
  }

  TEST_CASE("tune on miss: the first plan tunes the key, the next ones take its record" *
            test::needs_gpu()) {
    ScopedDatabase db;
    AttentionProblem problem = small_problem(300);
    problem.spec.pass = Pass::backward;
    PlanOptions options;
    options.tune_on_miss.enabled = true;
    options.tune_on_miss.worker = {test::cli_path(), "tune-worker"};

    const BackwardPlan plain(problem); // not asked to tune: the default, nothing written
    CHECK(plain.config_source() == cache::LookupSource::default_config);
    {
      cache::Database database(db.path, cache::OpenMode::read_write);
      CHECK(database.count_records() == 0);
    }
    const BackwardPlan tuned(problem, options);
    for (const std::string& w : tuned.cache_warnings())
      MESSAGE(w);
    CHECK(tuned.config_source() == cache::LookupSource::tuned);
    CHECK(tuned.binary_from_cache()); // the tuner stored the winner's cubin
    const BackwardPlan next(problem, options);
    CHECK(next.config_source() == cache::LookupSource::exact);
    CHECK(next.config() == tuned.config());
    cache::Database database(db.path, cache::OpenMode::read_write);
    CHECK(database.count_records() == 1);

    // In this process, without a worker, for the forward of another shape.
    PlanOptions in_process = options;
    in_process.tune_on_miss.worker.clear();
    in_process.tune_on_miss.budget = std::chrono::seconds(5);
    const ForwardPlan forward(small_problem(1000), in_process);
    CHECK(forward.config_source() == cache::LookupSource::tuned);
    check_output(forward);
    CHECK(database.count_records() == 2);
  }
}

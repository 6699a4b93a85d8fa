// The tuner on a real GPU, through the worker process it uses in production: a forward and a
// backward problem tuned end to end into a database (and skipped on the second run; the backward
// record then chosen by BackwardPlan), every backward config of the search space checked on odd
// shapes, candidates writing half their output rejected, a candidate that faults survived by
// restarting the worker, two runs picking the same winner, and the measurement's quality gate.
#include "cache/database.h"
#include "runtime/device_buffer.h"
#include "runtime/driver.h"
#include "tests/broken_kernel.h"
#include "tests/gpu_harness.h"
#include "tests/test_tuner_support.h"
#include "tuner/campaign.h"
#include "tuner/worker_client.h"

#include <attnjit/device.h>
#include <attnjit/format.h>
#include <attnjit/plan.h>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <tuple>

using namespace attnjit;
using namespace attnjit::tuner;
using attnjit::test::needs_gpu;

namespace {

AttentionProblem problem_of(int heads, int head_dim, int64_t seqlen, Pass pass = Pass::forward) {
  AttentionProblem p;
  p.spec.pass = pass;
  p.spec.head_dim_qk = p.spec.head_dim_v = head_dim;
  p.spec.num_heads = p.spec.num_kv_heads = heads;
  p.shape = {1, seqlen, seqlen};
  return p;
}

// Points ATTNJIT_CACHE_DB at `path` for one scope (plans read it), and back to "off" after.
struct ScopedCacheDb {
  explicit ScopedCacheDb(const std::string& path) { setenv("ATTNJIT_CACHE_DB", path.c_str(), 1); }
  ~ScopedCacheDb() { setenv("ATTNJIT_CACHE_DB", "off", 1); }
};

// Fast settings for sweeps that test correctness, not speed.
TuneOptions quick() {
  TuneOptions o;
  o.measure = {1, 3, false, 0, 0};
  o.selection.rounds = 1;
  o.selection.round_runs = 3;
  return o;
}

std::vector<std::string> worker() {
  return {test::cli_path(), "tune-worker"};
}

const CandidateReport* find(const TuneReport& r, const TileConfig& c) {
  for (const CandidateReport& x : r.candidates)
    if (x.config == c) return &x;
  return nullptr;
}

std::string summary(const TuneReport& r) {
  return fmt::format("{} {}: winner {} {:.4f} ms ({:.1f} TFLOP/s), default {} {:.4f} ms, {:.3f}x; "
                     "tried {} pruned {} rejected {}; {:.1f} s",
                     to_string(r.problem.spec), to_string(r.problem.shape), to_string(r.winner),
                     r.median_ms, r.tflops, to_string(r.default_config), r.default_ms, r.speedup,
                     r.tried, r.pruned, r.rejected, r.seconds);
}

} // namespace

TEST_SUITE("gpu.tuner") {
  TEST_CASE("the quality gate measures a spread-out timing again and flags it" * needs_gpu()) {
    runtime::DeviceBuffer buffer(1 << 20);
    const auto launch = [&](CUstream s) {
      ATTNJIT_CU(cuMemsetD32Async(buffer.address(), 0, buffer.size() / 4, s));
    };
    MeasureOptions strict{2, 20, false, 1e-12, 2}; // no real timing is that steady
    const Measurement noisy = measure(launch, nullptr, strict);
    CHECK(noisy.noisy);
    CHECK(noisy.attempts == 3);
    const Measurement plain = measure(launch, nullptr, {2, 20, false});
    CHECK_FALSE(plain.noisy);
    CHECK(plain.attempts == 1);
    CHECK(plain.median_ms > 0);
  }

  TEST_CASE("a forward problem tunes end to end into the database; a second run skips it" *
            needs_gpu()) {
    char dir[] = "/tmp/attnjit-gpu-tune-XXXXXX";
    REQUIRE(mkdtemp(dir) != nullptr);
    CampaignOptions options;
    options.db_path = std::string(dir) + "/tune.db";
    const BenchFactory factory = [](int device) {
      return std::make_unique<WorkerBench>(worker(), device);
    };
    const std::vector<NamedProblem> list{{"mha", problem_of(16, 64, 2048)}};
    const std::vector<ProblemResult> first = run_campaign(list, factory, options);
    REQUIRE(first.size() == 1);
    INFO(first[0].message);
    REQUIRE(first[0].state == ProblemState::tuned);
    const TuneReport& r = *first[0].report;
    MESSAGE(summary(r));
    const cache::TuningRecord& record = *first[0].record;
    const DeviceInfo gpu = query_device(0);
    CHECK(record.device.sku == gpu.name);
    CHECK(codegen::why_not(record.spec, record.config, limits_of(gpu)).empty());
    CHECK(record.median_ms > 0);
    CHECK(record.tflops > 1);
    CHECK(record.tflops < 1000); // above any card's peak would be a measurement bug
    CHECK(record.max_error > 0);
    CHECK(record.max_error < 0.02);
    CHECK(record.candidates_tried >= 10);
    // Configs outside codegen::candidates are checked here first: a rejection is the tuner doing
    // its job, but it should be the exception, and it is worth seeing.
    for (const CandidateReport& c : r.candidates)
      if (c.outcome && c.outcome->status != Status::ok)
        MESSAGE("rejected ", c.slug, ": ", c.outcome->detail);
    CHECK(record.candidates_rejected < record.candidates_tried / 4);
    CHECK(record.candidates_tried + record.candidates_pruned <= r.enumerated);
    CHECK(r.default_ms > 0);
    CHECK(r.median_ms <= r.default_ms * (1 + options.tune.selection.tie_band));
    {
      cache::Database db(options.db_path, cache::OpenMode::read_write);
      CHECK(db.find(cache::key_of(record)) == record);
    }
    const std::vector<ProblemResult> second = run_campaign(list, factory, options);
    CHECK(second[0].state == ProblemState::skipped);
    std::filesystem::remove_all(dir);
  }

  TEST_CASE("a backward problem tunes end to end; BackwardPlan then takes the record" *
            needs_gpu()) {
    char dir[] = "/tmp/attnjit-gpu-tune-bwd-XXXXXX";
    REQUIRE(mkdtemp(dir) != nullptr);
    CampaignOptions options;
    options.db_path = std::string(dir) + "/tune.db";
    const BenchFactory factory = [](int device) {
      return std::make_unique<WorkerBench>(worker(), device);
    };
    AttentionProblem gqa = problem_of(16, 128, 2048, Pass::backward);
    gqa.spec.num_kv_heads = 4;
    const std::vector<NamedProblem> list{{"mha bwd", problem_of(16, 64, 2048, Pass::backward)},
                                         {"gqa bwd", gqa}};
    const std::vector<ProblemResult> first = run_campaign(list, factory, options);
    const DeviceInfo gpu = query_device(0);
    for (const ProblemResult& result : first) {
      INFO(result.problem.name, ": ", result.message);
      REQUIRE(result.state == ProblemState::tuned);
      const TuneReport& r = *result.report;
      MESSAGE(summary(r));
      for (const CandidateReport& c : r.candidates)
        if (c.outcome && c.outcome->status != Status::ok)
          MESSAGE("rejected ", c.slug, ": ", c.outcome->detail);
      const cache::TuningRecord& record = *result.record;
      CHECK(record.spec.pass == Pass::backward);
      CHECK(codegen::why_not(record.spec, record.config, limits_of(gpu)).empty());
      CHECK(record.tflops > 1);
      CHECK(record.tflops < 1000);
      CHECK(record.max_error > 0);
      CHECK(record.candidates_tried >= 6);
      CHECK(record.candidates_rejected == 0); // every config of the space computes the gradients
      CHECK(r.default_ms > 0);
      CHECK(r.median_ms <= r.default_ms * (1 + options.tune.selection.tie_band));

      // The plan finds the record, and the winner's cubin with it: no NVRTC work.
      const ScopedCacheDb db(options.db_path);
      const BackwardPlan plan(result.problem.problem);
      CHECK(plan.config_source() == cache::LookupSource::exact);
      CHECK(plan.config() == record.config);
      CHECK(plan.binary_from_cache());
    }
    CHECK(run_campaign(list, factory, options)[1].state == ProblemState::skipped);
    std::filesystem::remove_all(dir);
  }

  TEST_CASE("every backward config of the search space passes the check on odd shapes" *
            needs_gpu()) {
    // Partial blocks on both sides, the causal diagonal off the block grid, GQA's group walk and
    // the deterministic dQ kernel, for every config the tuner may pick (codegen::candidates and
    // the tuner's wider grid alike).
    WorkerBench bench(worker(), 0);
    ThreadPool pool;
    const codegen::ArchLimits limits = limits_of(bench.device().info);
    for (auto [d, mask, deterministic] :
         {std::tuple{64, Mask::none, false}, std::tuple{64, Mask::causal, false},
          std::tuple{128, Mask::causal, false}, std::tuple{128, Mask::none, true}}) {
      AttentionProblem p = problem_of(4, d, 157, Pass::backward);
      p.spec.num_kv_heads = 2;
      p.spec.mask = mask;
      p.spec.deterministic = deterministic;
      p.shape = {2, 157, 263};
      const TuneReport r = tune(p, &bench, limits, pool, quick());
      MESSAGE(summary(r));
      for (const CandidateReport& c : r.candidates) {
        INFO(c.slug);
        if (c.outcome) CHECK_MESSAGE(c.outcome->status == Status::ok, c.outcome->detail);
      }
      CHECK(r.tried >= 6);
    }
  }

  TEST_CASE("a half-writing backward candidate is rejected by the NaN scan" * needs_gpu()) {
    const AttentionProblem p = problem_of(8, 64, 1024, Pass::backward);
    const TileConfig half{32, 64, 4, 2, false};
    TuneOptions options = quick();
    options.generate = [&](const KernelSpec& spec, const TileConfig& c) {
      return c == half ? test::half_output_kernel(spec, c) : codegen::generate(spec, c);
    };
    WorkerBench bench(worker(), 0);
    ThreadPool pool;
    const TuneReport r = tune(p, &bench, limits_of(bench.device().info), pool, options);
    const CandidateReport* h = find(r, half);
    REQUIRE(h != nullptr);
    REQUIRE(h->outcome);
    INFO(h->outcome->detail);
    CHECK(h->outcome->status == Status::wrong);
    CHECK(h->outcome->detail.find("NaN") != std::string::npos);
    CHECK_FALSE(r.winner == half);
    CHECK(r.rejected == 1);
  }

  TEST_CASE("a half-writing candidate is rejected and a faulting one is survived" * needs_gpu()) {
    const TileConfig half{64, 64, 4, 2, false}, fault{64, 32, 4, 2, false};
    TuneOptions options;
    options.generate = [&](const KernelSpec& spec, const TileConfig& c) {
      if (c == half) return test::half_output_kernel(spec, c);
      if (c == fault) return test::faulting_kernel(spec, c);
      return codegen::generate_forward(spec, c);
    };
    WorkerBench bench(worker(), 0);
    ThreadPool pool;
    const TuneReport r =
        tune(problem_of(8, 64, 1024), &bench, limits_of(bench.device().info), pool, options);
    MESSAGE(summary(r));
    const CandidateReport* h = find(r, half);
    const CandidateReport* f = find(r, fault);
    REQUIRE(h != nullptr);
    REQUIRE(f != nullptr);
    REQUIRE(h->outcome);
    REQUIRE(f->outcome);
    INFO("half: ", h->outcome->detail);
    INFO("fault: ", f->outcome->detail);
    CHECK(h->outcome->status == Status::wrong);
    CHECK(h->outcome->detail.find("NaN") != std::string::npos);
    CHECK(f->outcome->status == Status::crashed);
    CHECK(f->outcome->detail.find("kernel fault") != std::string::npos);
    CHECK(bench.restarts() >= 1);
    CHECK(r.rejected >= 2);
    CHECK_FALSE(r.winner == half);
    CHECK_FALSE(r.winner == fault);
    int ok = 0;
    for (const CandidateReport& c : r.candidates)
      ok += c.outcome && c.outcome->status == Status::ok;
    CHECK(ok == r.tried - r.rejected); // the others ran, before and after the crash
    CHECK(ok >= r.tried / 2);
  }

  TEST_CASE("two tuning runs pick the same winner" * needs_gpu()) {
    WorkerBench bench(worker(), 0);
    ThreadPool pool;
    const AttentionProblem p = problem_of(16, 128, 4096);
    const codegen::ArchLimits limits = limits_of(bench.device().info);
    const TuneReport a = tune(p, &bench, limits, pool, {});
    const TuneReport b = tune(p, &bench, limits, pool, {});
    MESSAGE(summary(a));
    MESSAGE(summary(b));
    CHECK(a.winner == b.winner);
  }
}

// The pick, apart from any GPU: the tie-break rule, finalists, and tune() end to end on the
// simulated bench with a fake compiler (invented CUBINs carrying SimBench's markers).
#include "tuner/select.h"
#include "tuner/sim_bench.h"
#include "tuner/tune.h"

#include <attnjit/error.h>

#include <doctest/doctest.h>

#include <algorithm>

using namespace attnjit;
using namespace attnjit::tuner;

namespace {

Timed timed(TileConfig c, double ms) {
  return {c, c.num_warps * 32, c.block_m * 256 + c.num_stages * c.block_n * 512, ms};
}

const TileConfig k64{64, 64, 4, 2, false}, k128{128, 64, 4, 2, false}, k128w8{128, 64, 8, 2, false};

// A compiler that compiles nothing: the CUBIN is SimBench's marker for the config.
CompileFn fake_compiler(std::function<std::string(const std::string& slug)> marker = {}) {
  return [marker](const runtime::CompileRequest& r) {
    runtime::CompiledProgram p;
    const std::string m = marker ? marker(r.program_name) : "SIM:ok";
    p.cubin.assign(m.begin(), m.end());
    p.lowered_names = {"fake_kernel"};
    p.resources = {{"fake_kernel", 128, 0, 0, 0, 0}};
    return p;
  };
}

AttentionProblem small_problem() {
  AttentionProblem p;
  p.spec.head_dim_qk = p.spec.head_dim_v = 64;
  p.spec.num_heads = p.spec.num_kv_heads = 8;
  p.shape = {2, 1024, 1024};
  return p;
}

} // namespace

TEST_SUITE("tuner.select") {
  TEST_CASE("configs order lexicographically and ties go to fewer threads, then less smem") {
    CHECK(config_less(k64, k128));
    CHECK(config_less({128, 64, 4, 2, false}, {128, 64, 4, 2, true}));
    // wgmma comes last: it decides only between configs equal in everything else.
    CHECK(config_less({128, 64, 4, 2, false, false}, {128, 64, 4, 2, false, true}));
    CHECK_FALSE(config_less({128, 64, 4, 2, false, true}, {128, 64, 4, 2, false, false}));
    CHECK(config_less({128, 64, 4, 2, false, true}, {128, 64, 4, 2, true, false}));
    CHECK(config_less({64, 64, 4, 2, false, true}, k128));
    CHECK_FALSE(config_less(k128, k128));
    CHECK(preferred(timed(k128, 1), timed(k128w8, 1)));          // 128 threads before 256
    CHECK(preferred(timed(k64, 1), timed(k128, 1)));             // same threads, less smem
    Timed a = timed(k64, 1), b = timed({64, 64, 4, 2, true}, 1); // same threads and smem
    CHECK(preferred(a, b));
    CHECK_FALSE(preferred(b, a));
    Timed w = timed({64, 64, 4, 2, false, true}, 1); // same threads and smem as a
    CHECK(preferred(a, w));
    CHECK_FALSE(preferred(w, a));
    // ... so in a tie the pick is the same whichever of the two measured faster.
    CHECK(pick(std::vector<Timed>{timed(w.config, 1.00), timed(k64, 1.01)}, 0.015) == 1);
    CHECK(pick(std::vector<Timed>{timed(k64, 1.01), timed(w.config, 1.00)}, 0.015) == 0);
  }

  TEST_CASE("warp_specialized comes after wgmma: a tie goes to the config without it") {
    const TileConfig wg{128, 128, 8, 2, false, true}, ws{128, 128, 8, 2, false, true, true};
    CHECK(config_less(wg, ws));
    CHECK_FALSE(config_less(ws, wg));
    CHECK_FALSE(config_less(ws, ws));
    // It decides only between configs equal in everything else, wgmma included.
    CHECK(config_less({128, 128, 8, 2, false, false, true}, wg));
    CHECK(config_less({64, 128, 8, 2, false, true, true}, wg));
    CHECK(config_less(ws, {128, 128, 8, 3, false, true, false}));
    Timed a = timed(wg, 1), b = timed(ws, 1); // same threads and smem
    CHECK(preferred(a, b));
    CHECK_FALSE(preferred(b, a));
    // In a tie the pick is the same whichever of the two measured faster.
    CHECK(pick(std::vector<Timed>{timed(ws, 1.00), timed(wg, 1.01)}, 0.015) == 1);
    CHECK(pick(std::vector<Timed>{timed(wg, 1.01), timed(ws, 1.00)}, 0.015) == 0);
    // Outside the band the faster one wins, warp-specialized or not.
    CHECK(pick(std::vector<Timed>{timed(ws, 1.00), timed(wg, 1.05)}, 0.015) == 0);
  }

  TEST_CASE("pick: the fastest wins outside the band, the tie-break inside it") {
    // k128w8 is fastest; k64 is 1% slower: a tie, and k64 has fewer threads and less smem.
    std::vector<Timed> t{timed(k128w8, 1.00), timed(k64, 1.01), timed(k128, 1.02)};
    CHECK(t[pick(t, 0.015)].config == k64);
    CHECK(t[pick(t, 0.005)].config == k128w8); // a narrower band: no tie
    t[1].median_ms = 0;                        // untimed: never picked
    CHECK(t[pick(t, 0.015)].config == k128w8);
    t[2].median_ms = 1.01; // now a tie, and 128 threads beat 256
    CHECK(t[pick(t, 0.015)].config == k128);
    // The order of the list does not matter.
    std::vector<Timed> r{t.rbegin(), t.rend()};
    CHECK(r[pick(r, 0.015)].config == k128);
    CHECK_THROWS_AS(pick(std::vector<Timed>{timed(k64, 0)}, 0.015), Error);
  }

  TEST_CASE("pick: the default keeps a tie within twice the band, and loses outside it") {
    // k128 (the incumbent) is 2% behind k128w8 and k64 is 1% behind: all three tie at 3%.
    std::vector<Timed> t{timed(k128w8, 1.00), timed(k64, 1.01), timed(k128, 1.02)};
    CHECK(t[pick(t, 0.03, 2)].config == k128);
    CHECK(t[pick(t, 0.03)].config == k64);         // without an incumbent, the tie-break rule
    CHECK(t[pick(t, 0.015, 2)].config == k128);    // 2% is within twice a 1.5% band
    CHECK(t[pick(t, 0.0075, 2)].config == k128w8); // not within twice 0.75%; k64 not within 0.75%
    CHECK(t[pick(t, 0.009, 2)].config == k128w8);  // 2% > 1.8%: the default loses
    t[2].median_ms = 0;                            // an untimed incumbent is never picked
    CHECK(t[pick(t, 0.03, 2)].config == k64);
  }

  TEST_CASE("finalists: the fastest few, near ties and the default, in config order") {
    std::vector<Timed> t;
    for (int i = 0; i < 10; ++i)
      t.push_back(timed({64 + 64 * (i % 2), 32 << (i % 3), 4 << (i % 2), 2 + i / 5, i % 4 == 0},
                        1.0 + 0.1 * i));
    SelectionRules rules;
    rules.finalists = 3;
    std::vector<size_t> f = finalists(t, rules, 9);
    CHECK(f.size() == 4);
    for (size_t i : {0, 1, 2, 9})
      CHECK(std::count(f.begin(), f.end(), i) == 1);
    CHECK(std::is_sorted(f.begin(), f.end(), [&](size_t a, size_t b) {
      return config_less(t[a].config, t[b].config);
    }));
    // Everything within twice the band joins, up to the cap.
    for (size_t i = 0; i < t.size(); ++i)
      t[i].median_ms = 1.0 + 0.0001 * double(i);
    rules.max_finalists = 6;
    CHECK(finalists(t, rules).size() == 6);
    CHECK(combine_rounds(std::vector<double>{3, 1, 2}) == 2);
    CHECK(combine_rounds(std::vector<double>{4, 1, 2, 3}) == 2.5);
  }

  TEST_CASE("tune on the simulated bench: rejects what misbehaves, picks deterministically") {
    const AttentionProblem problem = small_problem();
    TuneOptions options;
    options.compile = fake_compiler([](const std::string& slug) -> std::string {
      if (slug.ends_with("m64n32w4s2")) return kSimWrong;
      if (slug.ends_with("m64n64w4s3")) return kSimFault;
      return "SIM:ok";
    });
    ThreadPool pool(2);
    const codegen::ArchLimits device = codegen::arch_limits("sm_90a");
    SimBench bench(0);
    const TuneReport a = tune(problem, &bench, device, pool, options);
    CHECK(a.rejected == 2);
    CHECK(a.tried + a.pruned == a.enumerated);
    CHECK(a.default_ms > 0);
    CHECK(a.median_ms <= a.default_ms * (1 + options.selection.tie_band));
    CHECK(a.speedup == doctest::Approx(a.default_ms / a.median_ms));
    CHECK_FALSE(a.winner == TileConfig{64, 32, 4, 2, false});
    int wrong = 0, crashed = 0;
    for (const CandidateReport& c : a.candidates)
      if (c.outcome)
        wrong += c.outcome->status == Status::wrong,
            crashed += c.outcome->status == Status::crashed;
    CHECK(wrong == 1);
    CHECK(crashed == 1);
    SimBench again(0);
    CHECK(tune(problem, &again, device, pool, options).winner == a.winner);
  }

  TEST_CASE("screening: slow candidates get only the short measurement, the pick is unchanged") {
    TuneOptions options;
    options.compile = fake_compiler();
    ThreadPool pool(1); // one compile thread: candidates arrive in config order, the default first
    SimBench bench(0);
    const codegen::ArchLimits device = codegen::arch_limits("sm_90a");
    options.screen = 0;
    const TuneReport full = tune(small_problem(), &bench, device, pool, options);
    CHECK(full.screened == 0);
    options.screen = 1.25;
    const TuneReport screened = tune(small_problem(), &bench, device, pool, options);
    CHECK(screened.winner == full.winner);
    CHECK(screened.median_ms == full.median_ms);
    CHECK(screened.tried == full.tried);
    CHECK(screened.screened > 0);
    double fastest = full.median_ms;
    for (const CandidateReport& c : full.candidates)
      if (c.outcome && c.outcome->status == Status::ok)
        fastest = std::min(fastest, c.outcome->time.median_ms);
    // Only configs over 1.25x the best time seen before them were screened, never the default;
    // that time is never below the fastest, so each is over 1.25x the fastest.
    int screened_count = 0;
    for (const CandidateReport& c : screened.candidates) {
      if (!c.outcome || !c.outcome->screened) continue;
      ++screened_count;
      CHECK_FALSE(c.config == screened.default_config);
      CHECK(c.outcome->time.median_ms > 1.25 * fastest);
      CHECK(c.outcome->time.runs == kScreenMeasure.runs);
    }
    CHECK(screened_count == screened.screened);
    // Every config within 1.25x of the fastest got the full measurement.
    for (const CandidateReport& c : full.candidates)
      if (c.outcome && c.outcome->status == Status::ok &&
          c.outcome->time.median_ms <= 1.25 * fastest)
        for (const CandidateReport& s : screened.candidates)
          if (s.config == c.config) CHECK_FALSE(s.outcome->screened);
  }

  TEST_CASE("a candidate budget samples the same configs every time, the default first") {
    TuneOptions options;
    options.compile = fake_compiler();
    options.budget.candidates = 5;
    ThreadPool pool(2);
    SimBench bench(0);
    const codegen::ArchLimits device = codegen::arch_limits("sm_90a");
    const TuneReport a = tune(small_problem(), &bench, device, pool, options);
    const TuneReport b = tune(small_problem(), &bench, device, pool, options);
    CHECK(a.tried == 5);
    CHECK(a.winner == b.winner);
    options.budget = {0, 1e-9}; // seconds: only the default is still timed
    const TuneReport c = tune(small_problem(), &bench, device, pool, options);
    CHECK(c.budget_exhausted);
    CHECK(c.winner == c.default_config);
  }
}

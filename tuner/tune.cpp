#include "tuner/tune.h"

#include <attnjit/error.h>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>

namespace attnjit::tuner {

const char* to_string(Status status) {
  switch (status) {
  case Status::ok:
    return "ok";
  case Status::wrong:
    return "wrong answer";
  case Status::crashed:
    return "crashed";
  case Status::failed:
    return "failed";
  }
  return "unknown";
}

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

int static_smem(const CompileResult& r) {
  int bytes = 0;
  for (const runtime::ResourceUsage& u : r.usage)
    bytes = std::max(bytes, u.static_smem_bytes);
  return bytes;
}

// Submits every config; results arrive on the channel in the order they finish. Jobs hold the
// context and the channel themselves, so a search that stops early leaves nothing dangling.
struct CompileRun {
  std::shared_ptr<const CompileContext> context;
  std::shared_ptr<Channel<CompileResult>> results = std::make_shared<Channel<CompileResult>>();
  std::shared_ptr<std::atomic<bool>> cancel = std::make_shared<std::atomic<bool>>(false);

  void submit(ThreadPool& pool, int id, const TileConfig& config, bool baseline) {
    pool.submit([context = context, results = results, cancel = cancel, id, config, baseline] {
      CompileResult r;
      if (cancel->load()) {
        r.candidate.id = id;
        r.candidate.config = config;
        r.cancelled = true;
      } else {
        r = compile_candidate(*context, id, config, baseline);
      }
      results->push(std::move(r));
    });
  }
};

// Re-measures the finalists in alternation; the pick is made on these times.
void final_round(Bench& bench, const TuneOptions& options, std::vector<CompiledCandidate>& kept,
                 const std::vector<int>& static_bytes, std::vector<CompiledSource>& sources,
                 TuneReport& report) {
  std::vector<Timed> timed;
  std::vector<size_t> report_index; // timed[i] -> report.candidates
  std::optional<size_t> default_index;
  for (size_t i = 0; i < report.candidates.size(); ++i) {
    const CandidateReport& c = report.candidates[i];
    if (!c.outcome || c.outcome->status != Status::ok) continue;
    const size_t id = size_t(c.outcome->id);
    if (c.config == report.default_config) default_index = timed.size();
    timed.push_back({c.config, kept[id].threads, kept[id].dynamic_smem + static_bytes[id],
                     c.outcome->time.median_ms});
    report_index.push_back(i);
  }
  if (timed.empty())
    throw Error(ErrorKind::internal,
                fmt::format("no candidate for {} {} passed the check ({} rejected, {} pruned)",
                            to_string(report.problem.spec), to_string(report.problem.shape),
                            report.rejected, report.pruned));
  const std::vector<size_t> chosen = finalists(timed, options.selection, default_index);
  std::vector<Timed> final_timed;
  bool remeasured = false;
  if (chosen.size() > 1 && options.selection.rounds > 0) {
    std::vector<CompiledCandidate> batch;
    for (size_t i : chosen)
      batch.push_back(kept[size_t(report.candidates[report_index[i]].outcome->id)]);
    MeasureOptions round = options.measure;
    round.warmup = 3;
    round.runs = options.selection.round_runs;
    round.max_cv = 0; // the rounds are the repetition; one noisy round is outvoted
    std::vector<std::vector<double>> medians;
    try {
      medians = bench.remeasure(batch, options.selection.rounds, round);
    } catch (const Error& e) { // the first-pass times still make a valid (if noisier) pick
      report.note = fmt::format("re-measuring the finalists failed, picked on first-pass times: {}",
                                e.what());
    }
    remeasured = !medians.empty();
    for (size_t j = 0; j < chosen.size(); ++j) {
      Timed t = timed[chosen[j]];
      if (j < medians.size()) t.median_ms = combine_rounds(medians[j]);
      report.candidates[report_index[chosen[j]]].final_ms = t.median_ms;
      final_timed.push_back(t);
    }
  } else {
    for (size_t i : chosen) {
      final_timed.push_back(timed[i]);
      report.candidates[report_index[i]].final_ms = timed[i].median_ms;
    }
  }
  std::optional<size_t> default_final;
  for (size_t j = 0; j < chosen.size(); ++j)
    if (default_index && chosen[j] == *default_index) default_final = j;
  const size_t w = pick(final_timed, options.selection.tie_band, default_final);
  const size_t winner = report_index[chosen[w]];
  report.winner = report.candidates[winner].config;
  report.winner_outcome = *report.candidates[winner].outcome;
  const size_t winner_id = size_t(report.winner_outcome.id);
  report.winner_source = std::move(sources[winner_id]);
  report.winner_cubin = std::move(kept[winner_id].cubin);
  report.winner_kernels = kept[winner_id].kernels;
  report.median_ms = final_timed[w].median_ms;
  report.winner_runs = report.winner_outcome.time.runs;
  if (remeasured) report.winner_runs += options.selection.rounds * options.selection.round_runs;
  report.tflops = flop_count(report.problem) / (report.median_ms * 1e-3) / 1e12;
  for (size_t j = 0; j < chosen.size(); ++j)
    if (default_index && chosen[j] == *default_index) report.default_ms = final_timed[j].median_ms;
  if (report.default_ms > 0) report.speedup = report.default_ms / report.median_ms;
}

} // namespace

TuneReport tune(const AttentionProblem& problem, Bench* bench, const codegen::ArchLimits& device,
                ThreadPool& pool, const TuneOptions& options, const ProgressFn& progress) {
  const Clock::time_point start = Clock::now();
  validate(problem);
  TuneReport report;
  report.problem = problem;
  report.arch = device.arch;
  report.dry_run = bench == nullptr;
  const Space space = enumerate(problem, device);
  report.default_config = space.default_config;
  // The generator refuses a spec it cannot serve before any work.
  (options.generate ? options.generate : generate_kernel)(problem.spec, space.default_config);

  const std::vector<TileConfig> chosen =
      sample(space, options.budget.candidates, options.sample_seed);
  report.enumerated = int(space.accepted.size() + space.pruned.size());
  for (const auto& [config, verdict] : space.pruned)
    report.candidates.push_back({config, kernel_slug(problem.spec, config), verdict, {}, false, 0});
  std::vector<std::pair<TileConfig, Verdict>> pruned = space.pruned;

  CompileRun run{std::make_shared<const CompileContext>(
      CompileContext{problem, device, options.prune, options.generate, options.compile})};
  for (size_t i = 0; i < chosen.size(); ++i)
    run.submit(pool, int(i), chosen[i], chosen[i] == space.default_config);
  // Leaving early (the bench failed) cancels what is still queued; at the end nothing is.
  const struct CancelOnExit {
    std::atomic<bool>& cancel;
    ~CancelOnExit() { cancel.store(true); }
  } cancel_on_exit{*run.cancel};
  // The inputs and the reference are made while the pool compiles.
  Clock::time_point phase = Clock::now();
  if (bench)
    bench->prepare(
        {problem, options.seed, options.check_rows, options.check_keys, options.measure});
  report.prepare_seconds = seconds_since(phase);

  Progress p;
  p.total = int(chosen.size());
  p.pruned = int(space.pruned.size());
  std::vector<CompiledCandidate> kept(chosen.size()); // by id, for the alternation
  std::vector<int> static_bytes(chosen.size());       // by id; the tie-break weighs all smem
  std::vector<CompiledSource> sources(chosen.size()); // by id, for the winner's cache entry
  for (size_t received = 0; received < chosen.size(); ++received) {
    phase = Clock::now();
    CompileResult r = run.results->pop();
    report.compile_wait_seconds += seconds_since(phase);
    CandidateReport c{r.candidate.config, r.candidate.slug, r.verdict, {}, false, 0};
    if (c.slug.empty()) c.slug = kernel_slug(problem.spec, c.config);
    const bool baseline = c.config == space.default_config;
    if (!r.cancelled) ++p.compiled;
    if (r.cancelled || !r.verdict.ok()) {
      c.skipped = r.cancelled;
      if (!r.cancelled) pruned.emplace_back(c.config, r.verdict), ++p.pruned;
    } else if (!bench) {
      // dry run: compiled and accepted is all there is to know
    } else if (!baseline && options.budget.seconds > 0 &&
               seconds_since(start) > options.budget.seconds) {
      c.skipped = true;
      report.budget_exhausted = true;
      run.cancel->store(true);
    } else {
      const double screen_above_ms =
          !baseline && options.screen > 0 && p.best ? options.screen * p.best_ms : 0;
      phase = Clock::now();
      Outcome outcome = bench->evaluate(r.candidate, screen_above_ms);
      report.evaluate_seconds += seconds_since(phase);
      static_bytes[size_t(r.candidate.id)] = static_smem(r);
      ++report.tried;
      if (outcome.status == Status::ok) {
        ++p.timed;
        p.screened += outcome.screened;
        if (!p.best || outcome.time.median_ms < p.best_ms)
          p.best = c.config, p.best_ms = outcome.time.median_ms;
        sources[size_t(r.candidate.id)] = std::move(r.source);
        kept[size_t(r.candidate.id)] = std::move(r.candidate);
      } else {
        ++p.rejected;
      }
      c.outcome = std::move(outcome);
    }
    report.candidates.push_back(std::move(c));
    if (progress) progress(p);
  }
  report.pruned = p.pruned;
  report.rejected = p.rejected;
  report.screened = p.screened;
  report.pruned_by_reason = count_reasons(pruned);
  phase = Clock::now();
  if (bench) final_round(*bench, options, kept, static_bytes, sources, report);
  report.final_seconds = seconds_since(phase);
  report.seconds = seconds_since(start);
  return report;
}

} // namespace attnjit::tuner

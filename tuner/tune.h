// Tuning one problem on one device: enumerate and prune the space (space.h), compile on a thread
// pool while the bench checks and times what is compiled (compile_pool.h, bench.h), re-measure
// the fastest few in alternation and pick the winner by the fixed rule (select.h).
//
//   tuner::ThreadPool pool;
//   tuner::WorkerBench bench(worker_command, /*device=*/0);
//   tuner::TuneReport report = tuner::tune(problem, &bench, limits, pool, {});
#pragma once

#include "tuner/bench.h"
#include "tuner/compile_pool.h"
#include "tuner/select.h"
#include "tuner/space.h"

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace attnjit::tuner {

struct Budget {
  int candidates = 0; // > 0: at most this many configs, a fixed random sample
  double seconds = 0; // > 0: stop timing new candidates after this long (the default is always)
};

struct TuneOptions {
  uint64_t seed = 20261126; // of the inputs: the same for every candidate and every run
  int64_t check_rows = 512;
  int64_t check_keys = 256; // backward: dK/dV rows (ProblemSetup::check_keys)
  MeasureOptions measure{10, 50, true, 0.03, 2};
  // > 0: a candidate is first timed briefly (kScreenMeasure), and one over `screen` times the
  // best first-pass median so far gets no full measurement. Such a config can never be a
  // finalist while four faster ones exist; the default is always measured in full. 0: off.
  double screen = 1.25;
  SelectionRules selection;
  PruneRules prune;
  Budget budget;
  uint64_t sample_seed = 1; // of the budgeted random sample
  GenerateFn generate;      // empty: generate_kernel
  CompileFn compile;        // empty: runtime::compile
};

// What became of one config.
struct CandidateReport {
  TileConfig config;
  std::string slug;
  Verdict pruned;                 // not ok: pruned before or after compiling
  std::optional<Outcome> outcome; // when the bench saw it
  bool skipped = false;           // compiled, but the time budget ran out before timing
  double final_ms = 0;            // alternation median, for finalists
};

struct TuneReport {
  AttentionProblem problem;
  std::string arch;
  TileConfig winner;
  CompiledSource winner_source; // with winner_cubin: the binary cache's entry for the winner
  std::vector<char> winner_cubin;
  std::vector<std::string> winner_kernels; // lowered names
  Outcome winner_outcome;                  // its first-pass check and measurement
  double median_ms = 0;                    // the winner's time: alternation median when re-measured
  int winner_runs = 0; // timed runs behind it, first pass and alternation together
  double tflops = 0;
  TileConfig default_config;
  double default_ms = 0; // measured alongside the winner; 0 when the default failed
  double speedup = 0;    // default_ms / median_ms
  int enumerated = 0;    // configs considered
  int tried = 0;         // compiled and run on the device
  int pruned = 0;        // by can_implement, before or after compiling
  int rejected = 0;      // wrong, crashed or failed on the device
  int screened = 0;      // of the tried: timed only briefly, too far behind the best
  bool budget_exhausted = false;
  bool dry_run = false; // no bench: compiled only
  double seconds = 0;
  // Where the seconds went: waiting for the bench's inputs and reference, waiting for compiled
  // candidates (the GPU idle), checking and timing them, re-measuring the finalists.
  double prepare_seconds = 0, compile_wait_seconds = 0, evaluate_seconds = 0, final_seconds = 0;
  std::string note; // something the reader should know, e.g. why the alternation was skipped
  std::vector<std::pair<std::string, int>> pruned_by_reason;
  std::vector<CandidateReport> candidates;
};

struct Progress {
  int total = 0; // configs to compile
  int compiled = 0, timed = 0, rejected = 0, pruned = 0, screened = 0;
  std::optional<TileConfig> best;
  double best_ms = 0;
};
using ProgressFn = std::function<void(const Progress&)>;

// `bench` null is a dry run: enumerate, compile and prune, nothing timed. Throws Error
// (unsupported) for a spec the generator refuses, Error(internal) when no candidate passes,
// and whatever the bench throws when it is unusable.
TuneReport tune(const AttentionProblem& problem, Bench* bench, const codegen::ArchLimits& device,
                ThreadPool& pool, const TuneOptions& options, const ProgressFn& progress = {});

} // namespace attnjit::tuner

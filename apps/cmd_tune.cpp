// `attnjit tune`: find the fastest correct tile config for one problem (forward or backward), a
// list of problems or the seed suite on this machine's GPU(s), and store each winner in a tuning
// database. Candidates run
// in `attnjit tune-worker` processes, so one that crashes its CUDA context costs a restart, not
// the run. Resumable: problems already tuned with these templates are skipped.
#include "apps/cmd_tune_output.h"
#include "apps/problem_options.h"
#include "apps/self_path.h"
#include "cache/layered_cache.h"
#include "tuner/campaign.h"
#include "tuner/select.h"
#include "tuner/worker_client.h"
#include "tuner/worker_server.h"

#include <attnjit/error.h>

#include <fmt/format.h>

#include <chrono>
#include <climits>
#include <unistd.h>

using namespace llvm;

namespace attnjit::apps {
namespace {

cl::SubCommand Tune("tune", "Find the fastest correct tile config on this GPU and store it in a "
                            "tuning database");
ProblemOptions Problem(Tune);
// One tune flag: every one is bound to the subcommand and the category.
template <class T, class... Mods> auto flag(StringRef name, const char* help, Mods&&... mods) {
  return cl::opt<T>(name, cl::desc(help), cl::sub(Tune), cl::cat(category()), mods...);
}
cl::opt<Pass> PassFlag =
    pass_flag(Tune, "Which pass of the one problem to tune (default fwd)", "the forward kernel",
              "the backward: every launch of BackwardPlan::run is timed; dQ, "
              "dK and dV are checked");
cl::opt<std::string> Db =
    flag<std::string>("db", "Database to write (default: the user cache, $ATTNJIT_CACHE_DB or "
                            "~/.cache/attnjit/cache.db)");
cl::opt<std::string> Suite =
    flag<std::string>("suite", "A built-in list: seed (the seed benchmark's 15 configurations, "
                               "forward and backward), seed-fwd or seed-bwd");
cl::opt<std::string> ProblemFile =
    flag<std::string>("problems", "A file with one line of problem flags per problem");
cl::opt<std::string> Budget = flag<std::string>(
    "budget", "Per problem: N candidates (a fixed random sample) or Ns seconds (default: all)");
cl::opt<std::string> Devices =
    flag<std::string>("devices", "GPU ordinals, comma-separated, or 'all'", cl::init("0"));
cl::opt<bool> Json = flag<bool>("json", "One JSON object per problem on stdout, nothing else");
cl::opt<bool> Retune = flag<bool>("retune", "Tune problems that already have a record again");
cl::opt<bool> DryRun =
    flag<bool>("dry-run", "Enumerate, compile and prune only: no GPU, no database");
cl::opt<std::string> Arch =
    flag<std::string>("arch", "--dry-run's target (default sm_90a)", cl::init("sm_90a"));
cl::opt<uint64_t> Seed =
    flag<uint64_t>("seed", "Seed of the fixed random inputs", cl::init(tuner::TuneOptions{}.seed));
cl::opt<int64_t> CheckRows =
    flag<int64_t>("check-rows", "Output rows (backward: dQ rows) compared with the fp64 reference",
                  cl::init(512));
cl::opt<int64_t> CheckKeys =
    flag<int64_t>("check-keys",
                  "Backward: dK/dV rows compared with the fp64 reference, drawn from at most two "
                  "(batch, KV head) pairs",
                  cl::init(256));
cl::opt<int> Warmup = flag<int>("warmup", "Untimed runs before timing", cl::init(10));
cl::opt<int> Runs = flag<int>("runs", "Timed runs per candidate", cl::init(50));
cl::opt<double> TieBand =
    flag<double>("tie-band", "Percent within the fastest that counts as a tie",
                 cl::init(tuner::SelectionRules{}.tie_band * 100)); // one default, in select.h
cl::opt<double> MaxCv =
    flag<double>("max-cv", "Percent spread over which a timing is repeated", cl::init(3.0));
cl::opt<double> Screen = flag<double>(
    "screen",
    "Time a candidate briefly first and stop there when it is over this many times the best so "
    "far (0: time every candidate in full)",
    cl::init(tuner::TuneOptions{}.screen));
cl::opt<std::string> WorkerPath =
    flag<std::string>("worker", "Worker binary (default: this one)", cl::Hidden);
cl::opt<bool> InProcess =
    flag<bool>("in-process", "Run candidates in this process (no crash isolation)", cl::Hidden);
cl::opt<bool> Simulate =
    flag<bool>("simulate", "Simulated GPU with invented timings (tests)", cl::Hidden);

std::vector<tuner::NamedProblem> problems() {
  if (Suite.getNumOccurrences()) {
    if (Suite == "seed") return tuner::seed_suite(true, true);
    if (Suite == "seed-fwd") return tuner::seed_suite(true, false);
    if (Suite == "seed-bwd") return tuner::seed_suite(false, true);
    throw Error(ErrorKind::invalid_argument,
                fmt::format("unknown suite '{}' (seed, seed-fwd, seed-bwd)", Suite.getValue()));
  }
  if (ProblemFile.getNumOccurrences()) return tuner::parse_problem_file(ProblemFile);
  AttentionProblem problem = Problem.problem();
  problem.spec.pass = PassFlag;
  if (Problem.config_override(problem.spec, codegen::arch_limits("sm_90a")))
    throw Error(ErrorKind::invalid_argument, "tile flags pick a config; tune searches for one");
  return {
      {fmt::format("{} {}", attention_type(problem.spec), to_string(problem.spec.pass)), problem}};
}

tuner::TuneOptions tune_options() {
  tuner::TuneOptions o;
  o.seed = Seed;
  o.check_rows = CheckRows;
  o.check_keys = CheckKeys;
  o.measure.warmup = Warmup;
  o.measure.runs = Runs;
  o.measure.max_cv = MaxCv / 100;
  o.selection.tie_band = TieBand / 100;
  if (Screen != 0 && !(Screen > 1))
    throw Error(ErrorKind::invalid_argument,
                fmt::format("--screen: {} would screen out the best config; give a factor over 1, "
                            "or 0 for none",
                            Screen.getValue()));
  o.screen = Screen;
  if (Budget.getNumOccurrences()) {
    const std::string& b = Budget.getValue();
    char* end = nullptr;
    const double value = std::strtod(b.c_str(), &end);
    if (end == b.c_str() || value <= 0 || !(*end == '\0' || (end[0] == 's' && end[1] == '\0')))
      throw Error(ErrorKind::invalid_argument,
                  fmt::format("--budget: '{}' is neither N (candidates) nor Ns (seconds)", b));
    if (*end == 's')
      o.budget.seconds = value;
    else
      o.budget.candidates = int(std::min(value, double(INT_MAX)));
  }
  return o;
}

std::vector<int> device_list() {
  std::vector<int> out;
  if (Devices == "all") return out;
  for (size_t at = 0; at <= Devices.size();) {
    const size_t comma = std::min(Devices.find(',', at), Devices.size());
    const std::string word = Devices.substr(at, comma - at);
    char* end = nullptr;
    const long d = std::strtol(word.c_str(), &end, 10);
    if (word.empty() || *end != '\0' || d < 0)
      throw Error(ErrorKind::invalid_argument,
                  fmt::format("--devices: '{}' is not a GPU ordinal", word));
    out.push_back(int(d));
    at = comma + 1;
  }
  return out;
}

int run_dry(const std::vector<tuner::NamedProblem>& list, TuneOutput& out) {
  const codegen::ArchLimits limits = codegen::arch_limits(Arch);
  tuner::ThreadPool pool;
  for (const tuner::NamedProblem& p : list) {
    try {
      out.dry_run(p, tuner::tune(p.problem, nullptr, limits, pool, tune_options()));
    } catch (const Error& e) {
      fmt::print("{}: {}: {}\n", p.name,
                 e.kind() == ErrorKind::unsupported ? "unsupported" : "error", e.what());
    }
  }
  return 0;
}

int run_tune() {
  const std::vector<tuner::NamedProblem> list = problems();
  const TuneOutputMode mode = Json               ? TuneOutputMode::json
                              : ::isatty(1) != 0 ? TuneOutputMode::terminal
                                                 : TuneOutputMode::plain;
  TuneOutput out(mode, list.size());
  if (DryRun) return run_dry(list, out);

  tuner::CampaignOptions options;
  options.db_path =
      Db.getNumOccurrences() ? Db.getValue() : cache::default_cache_options("").user_path;
  options.devices = device_list();
  options.all_devices = options.devices.empty();
  options.retune = Retune;
  options.tune = tune_options();
  std::vector<std::string> worker{WorkerPath.empty() ? self_path() : WorkerPath.getValue(),
                                  "tune-worker"};
  if (Simulate) worker.push_back("--simulate");
  const tuner::BenchFactory make_bench = [&](int device) -> std::unique_ptr<tuner::Bench> {
    if (InProcess) return tuner::make_local_bench(device, Simulate);
    return std::make_unique<tuner::WorkerBench>(worker, device);
  };
  tuner::CampaignEvents events;
  events.started = [&](const tuner::ProblemResult& r) { out.started(r); };
  events.progress = [&](const tuner::ProblemResult& r, const tuner::Progress& p) {
    out.progress(r, p);
  };
  events.finished = [&](const tuner::ProblemResult& r) { out.finished(r); };
  const auto start = std::chrono::steady_clock::now();
  const std::vector<tuner::ProblemResult> results =
      tuner::run_campaign(list, make_bench, options, events);
  out.summary(results,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  for (const tuner::ProblemResult& r : results)
    if (r.state == tuner::ProblemState::failed) return 1;
  return 0;
}

Registration registration(Tune, run_tune);

} // namespace
} // namespace attnjit::apps

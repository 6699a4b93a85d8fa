#include "tuner/campaign.h"

#include "cache/database.h"
#include "codegen/embedded_templates.h"

#include <attnjit/error.h>

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <exception>
#include <mutex>
#include <thread>

namespace attnjit::tuner {

const char* to_string(ProblemState state) {
  switch (state) {
  case ProblemState::tuned:
    return "tuned";
  case ProblemState::skipped:
    return "skipped";
  case ProblemState::held:
    return "held";
  case ProblemState::unsupported:
    return "unsupported";
  case ProblemState::failed:
    return "failed";
  }
  return "unknown";
}

codegen::ArchLimits limits_of(const DeviceInfo& device) {
  return {device.arch(), device.max_smem_per_block, 1024}; // 1024 threads: every arch since Fermi
}

cache::TuningRecord make_record(const TuneReport& report, const DeviceInfo& device) {
  cache::TuningRecord r;
  r.device = cache::fingerprint_of(device);
  r.spec = report.problem.spec;
  r.spec.deterministic = false; // not a key column (docs/CACHE.md): one record serves both modes
  r.shape = report.problem.shape;
  r.config = report.winner;
  r.median_ms = report.median_ms;
  r.cv = report.winner_outcome.time.cv;
  r.runs = report.winner_runs;
  r.tflops = report.tflops;
  r.max_error = report.winner_outcome.max_error;
  r.candidates_tried = report.tried;
  r.candidates_pruned = report.pruned;
  r.candidates_rejected = report.rejected;
  r.noisy = report.winner_outcome.time.noisy;
  r.nvrtc_version = nvrtc_version();
  r.template_hash = codegen::template_hash();
  r.attnjit_version = ATTNJIT_VERSION;
  return r;
}

cache::TuningRecord store_result(cache::Database& db, const TuneReport& report,
                                 const DeviceInfo& device) {
  cache::TuningRecord record = make_record(report, device);
  record.created_at = cache::unix_now(); // what put() would set: the caller sees the row
  db.put(record);
  const CompiledSource& src = report.winner_source;
  if (!report.winner_cubin.empty() && !src.source.empty())
    db.put_binary({src.source, src.name_expressions, report.arch, record.nvrtc_version, src.options,
                   record.template_hash},
                  {report.winner_cubin, report.winner_kernels});
  return record;
}

namespace {

struct Shared {
  const std::vector<NamedProblem>& problems;
  const CampaignOptions& options;
  const CampaignEvents& events;
  ThreadPool pool;
  std::atomic<size_t> next{0};
  std::mutex mutex; // events and results
  std::vector<ProblemResult> results;
};

// One problem on one device: resume check and claim, tune, record.
void run_one(Shared& s, Bench& bench, cache::Database& db, ProblemResult& r) {
  const DeviceInfo& info = bench.device().info;
  try {
    validate(r.problem.problem);
  } catch (const Error& e) {
    r.state = e.kind() == ErrorKind::unsupported ? ProblemState::unsupported : ProblemState::failed;
    r.message = e.what();
    return;
  }
  const cache::RecordKey key{info.name, r.problem.problem.spec, r.problem.problem.shape};
  const std::string templates = codegen::template_hash();
  bool claimed = false;
  if (!s.options.retune) {
    const cache::ClaimResult claim =
        db.try_claim(key, std::chrono::seconds(s.options.claim_ttl_seconds), templates);
    if (claim.status == cache::ClaimStatus::already_tuned) {
      r.state = ProblemState::skipped;
      r.message = "already tuned with these templates";
      r.record = db.find(key);
      return;
    }
    if (claim.status == cache::ClaimStatus::held) {
      r.state = ProblemState::held;
      r.message =
          fmt::format("pid {} on {} is tuning it", claim.holder.who.pid, claim.holder.who.host);
      return;
    }
    claimed = true;
  }
  try {
    r.report = tune(r.problem.problem, &bench, limits_of(info), s.pool, s.options.tune,
                    [&](const Progress& p) {
                      std::lock_guard lock(s.mutex);
                      if (s.events.progress) s.events.progress(r, p);
                    });
    r.record = store_result(db, *r.report, info);
    r.state = ProblemState::tuned;
  } catch (const Error& e) {
    r.state = e.kind() == ErrorKind::unsupported ? ProblemState::unsupported : ProblemState::failed;
    r.message = e.what();
  }
  if (claimed) db.release_claim(key);
}

void device_loop(Shared& s, Bench& bench) {
  cache::Database db(s.options.db_path, cache::OpenMode::read_write); // one per thread
  for (size_t i; (i = s.next.fetch_add(1)) < s.problems.size();) {
    ProblemResult r;
    r.index = i;
    r.problem = s.problems[i];
    r.device = bench.device().info.ordinal;
    {
      std::lock_guard lock(s.mutex);
      if (s.events.started) s.events.started(r);
    }
    run_one(s, bench, db, r);
    std::lock_guard lock(s.mutex);
    if (s.events.finished) s.events.finished(r);
    s.results[i] = std::move(r);
  }
}

} // namespace

std::vector<ProblemResult> run_campaign(const std::vector<NamedProblem>& problems,
                                        const BenchFactory& make_bench,
                                        const CampaignOptions& options,
                                        const CampaignEvents& events) {
  if (options.db_path.empty())
    throw Error(ErrorKind::invalid_argument, "tune needs a database file (--db)");
  Shared s{problems, options, events, ThreadPool(0), {}, {}, {}};
  s.results.resize(problems.size());
  cache::Database check(options.db_path, cache::OpenMode::read_write); // fail early, by name

  std::vector<int> devices = options.devices;
  if (devices.empty()) devices = {0};
  std::vector<std::unique_ptr<Bench>> benches;
  benches.push_back(make_bench(options.all_devices ? 0 : devices.front()));
  if (options.all_devices) {
    devices.clear();
    for (int d = 0; d < benches.front()->device().device_count; ++d)
      devices.push_back(d);
  }
  for (size_t i = 1; i < devices.size(); ++i)
    benches.push_back(make_bench(devices[i]));

  std::vector<std::thread> threads;
  std::vector<std::exception_ptr> errors(benches.size());
  for (size_t i = 0; i < benches.size(); ++i)
    threads.emplace_back([&, i] {
      try {
        device_loop(s, *benches[i]);
      } catch (...) {
        errors[i] = std::current_exception();
      }
    });
  for (std::thread& t : threads)
    t.join();
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
  return std::move(s.results);
}

} // namespace attnjit::tuner

#include "tuner/tune_on_miss.h"

#include "cache/database.h"
#include "codegen/embedded_templates.h"

#include <attnjit/error.h>

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>

namespace attnjit::tuner {
namespace {

using Clock = std::chrono::steady_clock;

// The claims table picks one process per key, but a claim names a process, not a thread: a
// second thread of the claimant would find its own claim and tune again. So the threads of one
// process queue on a lock per key first. One small entry per key this process ever missed.
std::shared_ptr<std::timed_mutex> key_lock(const std::string& key) {
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<std::timed_mutex>> locks;
  std::lock_guard lock(mutex);
  std::shared_ptr<std::timed_mutex>& entry = locks[key];
  if (!entry) entry = std::make_shared<std::timed_mutex>();
  return entry;
}

MissResult fallback(const AttentionProblem& problem, const DeviceInfo& device, std::string note) {
  MissResult r;
  r.config = codegen::default_config(problem.spec, limits_of(device));
  r.note = std::move(note);
  return r;
}

MissResult from_record(cache::TuningRecord record, cache::LookupSource source, std::string note) {
  MissResult r;
  r.config = record.config;
  r.source = source;
  r.record = std::move(record);
  r.note = std::move(note);
  return r;
}

// Releases the claim when the tuning ends. After a record, release() says what went wrong, for
// the plan's note; on the way out of an exception the destructor releases quietly (the tuning's
// error says more). A claim left behind names a live process; once it ends, the next claimant
// takes it over.
struct ClaimRelease {
  cache::Database& db;
  const cache::RecordKey& key;
  bool done = false;
  std::string release() {
    done = true;
    try {
      return db.release_claim(key) ? std::string() : "another process had taken the claim over";
    } catch (const Error& e) {
      return fmt::format("releasing the claim failed, so it stays until this process ends: {}",
                         e.what());
    }
  }
  ~ClaimRelease() {
    if (!done) release();
  }
};

MissResult tune_claimed(cache::Database& db, const cache::RecordKey& key,
                        const AttentionProblem& problem, const DeviceInfo& device,
                        const MissOptions& options, const std::string& claim_note) {
  ClaimRelease claim{db, key};
  if (!options.make_bench)
    throw Error(ErrorKind::internal, "tune on miss: MissOptions::make_bench is empty");
  const std::unique_ptr<Bench> bench = options.make_bench(device.ordinal);
  const DeviceInfo& measured = bench->device().info;
  if (measured.name != device.name)
    throw Error(ErrorKind::internal,
                fmt::format("tune on miss: the bench measures '{}' (device {}), the plan runs on "
                            "'{}' (device {})",
                            measured.name, measured.ordinal, device.name, device.ordinal));
  ThreadPool pool;
  const TuneReport report = tune(problem, bench.get(), limits_of(measured), pool, options.tune);
  std::string note = fmt::format(
      "tuned {} in {:.1f} s: {} ({:.4f} ms; the default {}{})", to_string(key), report.seconds,
      to_string(report.winner), report.median_ms, to_string(report.default_config),
      report.default_ms > 0 ? fmt::format(" {:.4f} ms, {:.2f}x", report.default_ms, report.speedup)
                            : std::string(" failed its check"));
  if (!claim_note.empty()) note += "; " + claim_note;
  MissResult result =
      from_record(store_result(db, report, measured), cache::LookupSource::tuned, std::move(note));
  if (const std::string why = claim.release(); !why.empty()) result.note += "; " + why;
  return result;
}

MissResult claim_or_wait(cache::Database& db, const cache::RecordKey& key,
                         const AttentionProblem& problem, const DeviceInfo& device,
                         const MissOptions& options, Clock::time_point deadline) {
  const std::string templates = codegen::template_hash();
  const cache::ClaimResult claim = db.try_claim(key, options.claim_ttl, templates);
  switch (claim.status) {
  case cache::ClaimStatus::claimed:
  case cache::ClaimStatus::taken_over:
    return tune_claimed(db, key, problem, device, options, claim.note);
  case cache::ClaimStatus::already_tuned:
    if (std::optional<cache::TuningRecord> record = db.find(key))
      return from_record(std::move(*record), cache::LookupSource::exact,
                         "a record for it was written between the lookup and the claim");
    return fallback(problem, device, "its record vanished between the claim and the read");
  case cache::ClaimStatus::held:
    break;
  }
  const auto left = std::max(Clock::duration::zero(), deadline - Clock::now());
  const std::string holder =
      fmt::format("pid {} on {}", claim.holder.who.pid, claim.holder.who.host);
  const cache::WaitResult waited = db.wait_for_record(
      key, templates, std::chrono::duration_cast<std::chrono::milliseconds>(left));
  if (waited.record)
    return from_record(std::move(*waited.record), cache::LookupSource::waited,
                       fmt::format("{} tuned it while this plan waited", holder));
  return fallback(problem, device,
                  fmt::format("{} is tuning it; no record: {}", holder, waited.why_not));
}

} // namespace

MissResult tune_on_miss(const AttentionProblem& problem, const DeviceInfo& device,
                        const MissOptions& options) {
  const Clock::time_point deadline = Clock::now() + options.wait;
  const cache::RecordKey key{device.name, problem.spec, problem.shape};
  if (options.db_path.empty())
    return fallback(problem, device,
                    "tune on miss needs a writable user database and there is none "
                    "($ATTNJIT_CACHE_DB is 'off', or no home folder is known)");
  const std::shared_ptr<std::timed_mutex> lock = key_lock(to_string(key));
  std::unique_lock<std::timed_mutex> held(*lock, std::try_to_lock);
  const bool queued = !held.owns_lock();
  if (queued && !held.try_lock_until(deadline))
    return fallback(problem, device,
                    fmt::format("another thread of this process is tuning it; no record within "
                                "{} ms",
                                options.wait.count()));
  try {
    cache::Database db(options.db_path, cache::OpenMode::read_write);
    if (!queued) return claim_or_wait(db, key, problem, device, options, deadline);
    // The thread ahead of this one tuned the key or waited for it: never tune it a second time.
    if (std::optional<cache::TuningRecord> record = db.find(key);
        record && record->template_hash == codegen::template_hash())
      return from_record(std::move(*record), cache::LookupSource::waited,
                         "another thread of this process tuned it while this one waited");
    return fallback(problem, device,
                    "the thread of this process ahead of this one got no record for it");
  } catch (const Error& e) {
    return fallback(problem, device, fmt::format("tune on miss failed: {}", e.what()));
  }
}

} // namespace attnjit::tuner

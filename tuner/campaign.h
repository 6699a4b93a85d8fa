// Tuning a list of problems into one database: one thread and one bench (worker) per GPU, each
// taking the next problem; every record is written as soon as it is picked, so an interrupted
// run resumes where it stopped: a key with a record of this build's templates is skipped, and a
// key another process is tuning (its claim, cache/database.h) is left to it.
#pragma once

#include "tuner/suite.h"
#include "tuner/tune.h"

#include <attnjit/cache.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace attnjit::cache {
class Database;
}

namespace attnjit::tuner {

struct CampaignOptions {
  std::string db_path; // written; created when missing
  std::vector<int> devices{0};
  bool all_devices = false; // every GPU the first bench's driver reports, ignoring `devices`
  bool retune = false;      // tune keys that already have a current record again
  int claim_ttl_seconds = 6 * 3600;
  TuneOptions tune;
};

enum class ProblemState {
  tuned,       // record written
  skipped,     // a record with this build's templates exists
  held,        // another live process claims it
  unsupported, // the spec is valid but not served (a head dim no kernel has)
  failed,      // no candidate passed, or the problem could not be set up
};
const char* to_string(ProblemState state);

struct ProblemResult {
  size_t index = 0; // in the list given
  NamedProblem problem;
  ProblemState state = ProblemState::failed;
  std::string message; // why not tuned
  int device = -1;
  std::optional<TuneReport> report;
  std::optional<cache::TuningRecord> record;
};

struct CampaignEvents {
  // Called from the device threads, one call at a time.
  std::function<void(const ProblemResult& starting)> started;
  std::function<void(const ProblemResult& current, const Progress&)> progress;
  std::function<void(const ProblemResult& done)> finished;
};

using BenchFactory = std::function<std::unique_ptr<Bench>(int device)>;

// Throws when a bench cannot be created (no GPU: Error(no_device)); a problem's own failure is
// its ProblemResult.
std::vector<ProblemResult> run_campaign(const std::vector<NamedProblem>& problems,
                                        const BenchFactory& make_bench,
                                        const CampaignOptions& options,
                                        const CampaignEvents& events = {});

// The database record of a tuned problem, with this build's provenance.
cache::TuningRecord make_record(const TuneReport& report, const DeviceInfo& device);

// Writes make_record()'s record into `db`, and the winner's CUBIN into its binary cache under the
// key a plan computes (cache::BinaryKey), so a plan that finds the record runs no NVRTC. Returns
// the record as stored (created_at set).
cache::TuningRecord store_result(cache::Database& db, const TuneReport& report,
                                 const DeviceInfo& device);

// The device's limits as can_implement uses them.
codegen::ArchLimits limits_of(const DeviceInfo& device);

} // namespace attnjit::tuner

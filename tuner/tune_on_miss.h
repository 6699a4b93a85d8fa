// Tuning on a plan's cache miss (docs/CACHE.md, "Tune on miss"; opt-in through
// PlanOptions::tune_on_miss): of all the processes and threads that miss the same key, one claims
// it, tunes it and writes the record; the others wait, bounded, for that record and take the
// default config when it does not come. Nobody tunes a key twice.
//
//   MissOptions o{user_db_path, wait, ttl, tune_options, bench_factory};
//   MissResult r = tune_on_miss(problem, device_info, o); // r.source: tuned, waited, default...
#pragma once

#include "tuner/campaign.h"

#include <attnjit/cache.h>
#include <attnjit/device.h>

#include <chrono>
#include <optional>
#include <string>

namespace attnjit::tuner {

struct MissOptions {
  std::string db_path;                      // the user database: the claim and the record
  std::chrono::milliseconds wait{600'000};  // for another claimant's record, at most
  std::chrono::seconds claim_ttl{6 * 3600}; // a claim of another host lives this long
  TuneOptions tune;                         // the search, as `attnjit tune` runs it
  BenchFactory make_bench;                  // the device side: a worker, in-process, or simulated
};

struct MissResult {
  TileConfig config;
  // tuned (this call tuned it), waited (another process or thread did, while this one waited),
  // exact (a record appeared between the lookup and the claim) or default_config.
  cache::LookupSource source = cache::LookupSource::default_config;
  std::optional<cache::TuningRecord> record;
  std::string note; // what happened, in a sentence: why the default, when it is the default
};

// `device` is the GPU the plan runs on; its name is the key's SKU, and the bench must measure the
// same GPU. A tuning or database that fails is the default config with the reason in `note`;
// throws only what codegen::default_config throws for a spec no config serves.
MissResult tune_on_miss(const AttentionProblem& problem, const DeviceInfo& device,
                        const MissOptions& options);

} // namespace attnjit::tuner

// Whole-database operations behind `attnjit cache merge | import | verify | prune | coverage`.
#pragma once

#include "cache/database.h"

#include <attnjit/cache.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace attnjit::cache {

// Opens an existing database for reading: read-only (a live WAL database others write to), else
// immutable (a file on a read-only filesystem). Throws the read-only attempt's error.
std::unique_ptr<Database> open_for_reading(const std::string& path);

// Which of two records for one key is better measured. The first rule that tells them apart
// decides: (1) tuned with `template_hash`, (2) not noisy, (3) more timed runs, (4) lower cv,
// (5) newer. A tie keeps `existing`.
struct Verdict {
  bool incoming_wins = false;
  std::string rule; // "more runs (200 vs 50)", or "identical" / "tie" when nothing differs
};
Verdict better_measured(const TuningRecord& existing, const TuningRecord& incoming,
                        const std::string& template_hash);

struct MergeConflict {
  RecordKey key;
  TuningRecord kept, dropped;
  bool incoming_kept = false; // the record being merged in won over the one already there
  std::string rule;           // why `kept` won
};

struct MergeReport {
  int64_t added = 0;     // keys new to the target
  int64_t identical = 0; // same record already there
  int64_t replaced = 0;  // conflicts the incoming record won
  int64_t kept = 0;      // conflicts the existing record won
  int64_t binaries_added = 0;
  std::vector<MergeConflict> conflicts;
};

// Adds `records` to `into` in one write transaction, resolving each conflict by
// better_measured() and reporting it.
MergeReport merge_records(Database& into, std::span<const TuningRecord> records,
                          const std::string& template_hash);

// Records by merge_records(), then binaries `into` does not have.
MergeReport merge_database(Database& into, Database& from, const std::string& template_hash);

// `attnjit cache merge A B -o OUT`: OUT must not exist (it is never overwritten); A goes in
// first, so A wins ties.
MergeReport merge_files(const std::string& a, const std::string& b, const std::string& out,
                        const std::string& template_hash);

struct VerifyReport {
  std::vector<std::string> problems; // damage: the file should not be trusted as is
  std::vector<std::string> notes;    // worth knowing: stale entries, live claims
  bool ok() const { return problems.empty(); }
};

// Opens `path` read-only and checks SQLite's integrity, foreign keys, every record and every
// binary (key and checksum). Never throws for the file's problems; they are the report.
VerifyReport verify(const std::string& path, const std::string& template_hash);

// Every given criterion must match (they combine with AND). Binaries are removed by age and
// template only, so a filter naming a SKU leaves them alone.
struct PruneFilter {
  std::optional<int64_t> older_than_seconds;
  std::string sku;              // "" for any
  bool stale_templates = false; // template hash other than `template_hash`
  std::string template_hash;
};

struct PruneReport {
  int64_t records = 0, binaries = 0, devices = 0, claims = 0;
};

// Throws Error(invalid_argument) when the filter names no criterion. Also removes expired claims
// and devices no record refers to.
PruneReport prune(Database& db, const PruneFilter& filter, int64_t now);

struct CoverageEntry {
  std::string sku;
  KernelSpec spec;
  std::vector<AttentionShape> shapes; // tuned exactly
};

// Specs and shapes a database covers, for one SKU ("" for all), grouped by SKU and spec.
std::vector<CoverageEntry> coverage(Database& db, const std::string& sku);

} // namespace attnjit::cache

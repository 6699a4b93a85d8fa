// `attnjit cache verify`: is this file safe to use as it is? SQLite's own checks first, then
// ours: every record readable with its bucket columns up to date, every binary's key and cubin
// checksum matching its fields.
#include "cache/maintenance.h"
#include "cache/record_columns.h"
#include "cache/sha256.h"

#include <attnjit/error.h>

#include <fmt/format.h>

namespace attnjit::cache {
namespace {

void check_sqlite(Database& db, VerifyReport& report) {
  sql::Statement integrity(db.connection(), "PRAGMA integrity_check");
  while (integrity.step())
    if (std::string row = integrity.column_text(0); row != "ok")
      report.problems.push_back("integrity_check: " + row);
  sql::Statement keys(db.connection(), "PRAGMA foreign_key_check");
  while (keys.step())
    report.problems.push_back(fmt::format("foreign_key_check: row {} of {} refers to a missing {}",
                                          keys.column_int(1), keys.column_text(0),
                                          keys.column_text(2)));
}

void check_records(Database& db, const std::string& template_hash, VerifyReport& report) {
  sql::Statement rows(db.connection(), ATTNJIT_RECORD_SELECT "ORDER BY r.id");
  sql::Statement buckets(db.connection(),
                         "SELECT bucket_seqlen_q, bucket_seqlen_k, bucket_batch_heads FROM "
                         "tuning_records WHERE id = ?1");
  int64_t count = 0, stale = 0;
  while (rows.step()) {
    ++count;
    StoredRecord stored;
    try {
      stored = read_record(rows);
    } catch (const Error& e) {
      report.problems.push_back(e.what());
      continue;
    }
    const TuningRecord& r = stored.record;
    if (r.template_hash != template_hash) ++stale;
    buckets.reset();
    buckets.bind(1, stored.id);
    if (!buckets.step()) continue;
    const ShapeBucket want = bucket_of(r.spec, r.shape);
    const ShapeBucket have{buckets.column_int(0), buckets.column_int(1), buckets.column_int(2)};
    if (have != want)
      report.problems.push_back(fmt::format("tuning record {} ({}): bucket columns say {}, "
                                            "its shape belongs in {}",
                                            stored.id, to_string(key_of(r)), to_string(have),
                                            to_string(want)));
  }
  report.notes.push_back(fmt::format("{} tuning records", count));
  if (stale > 0)
    report.notes.push_back(fmt::format("{} records tuned with other templates than {} (skipped "
                                       "by lookups; `prune --stale-templates` removes them)",
                                       stale, template_hash));
}

void check_binaries(Database& db, const std::string& template_hash, VerifyReport& report) {
  sql::Statement rows(db.connection(),
                      "SELECT key, source_sha256, name_expressions, arch, nvrtc_version, options, "
                      "template_hash, cubin, cubin_sha256 FROM binaries ORDER BY key");
  int64_t count = 0, stale = 0;
  while (rows.step()) {
    ++count;
    const std::string key = rows.column_text(0);
    const std::string expected =
        binary_key_hash(rows.column_text(1), rows.column_text(2), rows.column_text(3),
                        rows.column_text(4), rows.column_text(5), rows.column_text(6));
    if (key != expected)
      report.problems.push_back(
          fmt::format("binary {}: key does not match its fields ({})", key, expected));
    const std::vector<char> cubin = rows.column_blob(7);
    if (cubin.empty() || sha256_hex({cubin.data(), cubin.size()}) != rows.column_text(8))
      report.problems.push_back(fmt::format("binary {} ({}): cubin of {} bytes does not match "
                                            "its checksum",
                                            key, rows.column_text(3), cubin.size()));
    if (rows.column_text(6) != template_hash) ++stale;
  }
  report.notes.push_back(fmt::format("{} compiled binaries", count));
  if (stale > 0)
    report.notes.push_back(
        fmt::format("{} binaries built from other templates (never loaded)", stale));
}

void check_claims(Database& db, VerifyReport& report) {
  sql::Statement rows(db.connection(),
                      "SELECT key, pid, host, pid_start, started_at, expires_at FROM claims");
  const int64_t now = unix_now();
  while (rows.step()) {
    const ClaimHolder holder{{rows.column_int(1), rows.column_text(2), rows.column_int(3)},
                             rows.column_int(4),
                             rows.column_int(5)};
    report.notes.push_back(fmt::format("claim on {} by pid {} on {}: {}", rows.column_text(0),
                                       holder.who.pid, holder.who.host,
                                       claim_is_live(holder, now) ? "live" : "dead or expired"));
  }
}

} // namespace

VerifyReport verify(const std::string& path, const std::string& template_hash) {
  VerifyReport report;
  try {
    std::unique_ptr<Database> db = open_for_reading(path);
    report.notes.push_back(fmt::format("schema version {} (application_id {:#010x})",
                                       db->connection().query_int("PRAGMA user_version"),
                                       kApplicationId));
    check_sqlite(*db, report);
    check_records(*db, template_hash, report);
    check_binaries(*db, template_hash, report);
    check_claims(*db, report);
  } catch (const Error& e) {
    report.problems.push_back(e.what());
  }
  return report;
}

} // namespace attnjit::cache

// Merging databases and importing records: the better-measured record of each key wins.
#include "cache/maintenance.h"

#include <attnjit/error.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace attnjit::cache {

std::unique_ptr<Database> open_for_reading(const std::string& path) {
  try {
    return std::make_unique<Database>(path, OpenMode::read_only);
  } catch (const Error& first) {
    try {
      return std::make_unique<Database>(path, OpenMode::immutable);
    } catch (const Error&) {
      throw first;
    }
  }
}

Verdict better_measured(const TuningRecord& existing, const TuningRecord& incoming,
                        const std::string& template_hash) {
  if (existing == incoming) return {false, "identical"};
  const bool a_current = existing.template_hash == template_hash;
  const bool b_current = incoming.template_hash == template_hash;
  if (a_current != b_current) return {b_current, "tuned with this build's templates"};
  if (existing.noisy != incoming.noisy) return {existing.noisy, "not noisy"};
  if (existing.runs != incoming.runs)
    return {incoming.runs > existing.runs,
            fmt::format("more runs ({} vs {})", std::max(existing.runs, incoming.runs),
                        std::min(existing.runs, incoming.runs))};
  if (existing.cv != incoming.cv)
    return {incoming.cv < existing.cv,
            fmt::format("lower spread (cv {:.4f} vs {:.4f})", std::min(existing.cv, incoming.cv),
                        std::max(existing.cv, incoming.cv))};
  if (existing.created_at != incoming.created_at)
    return {incoming.created_at > existing.created_at, "newer"};
  return {false, "tie, the first one is kept"};
}

MergeReport merge_records(Database& into, std::span<const TuningRecord> records,
                          const std::string& template_hash) {
  MergeReport report;
  sql::WriteTransaction tx(into.connection());
  for (const TuningRecord& incoming : records) {
    const RecordKey key = key_of(incoming);
    const std::optional<TuningRecord> existing = into.find(key);
    if (!existing) {
      into.put(incoming);
      ++report.added;
      continue;
    }
    const Verdict verdict = better_measured(*existing, incoming, template_hash);
    if (verdict.rule == "identical") {
      ++report.identical;
      continue;
    }
    if (verdict.incoming_wins) {
      into.put(incoming);
      ++report.replaced;
      report.conflicts.push_back({key, incoming, *existing, true, verdict.rule});
    } else {
      ++report.kept;
      report.conflicts.push_back({key, *existing, incoming, false, verdict.rule});
    }
  }
  tx.commit();
  return report;
}

MergeReport merge_database(Database& into, Database& from, const std::string& template_hash) {
  std::vector<TuningRecord> records;
  for (StoredRecord& stored : from.records())
    records.push_back(std::move(stored.record));
  MergeReport report = merge_records(into, records, template_hash);

  // Binaries are content-addressed: one key, one cubin, so an existing row is kept as is.
  sql::WriteTransaction tx(into.connection());
  sql::Use select(from.statement("SELECT key, source_sha256, name_expressions, arch, "
                                 "nvrtc_version, options, template_hash, lowered_names, cubin, "
                                 "cubin_sha256, created_at FROM binaries ORDER BY key"));
  sql::Use insert(into.statement("INSERT OR IGNORE INTO binaries (key, source_sha256, "
                                 "name_expressions, arch, nvrtc_version, options, template_hash, "
                                 "lowered_names, cubin, cubin_sha256, created_at) VALUES (?1, ?2, "
                                 "?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"));
  while (select->step()) {
    insert->reset();
    for (int c = 0; c < 11; ++c) {
      if (c == 8) {
        const std::vector<char> cubin = select->column_blob(c);
        insert->bind_blob(c + 1, cubin);
      } else if (c == 10) {
        insert->bind(c + 1, select->column_int(c));
      } else {
        insert->bind(c + 1, select->column_text(c));
      }
    }
    insert->run();
    report.binaries_added += sqlite3_changes(into.connection().handle());
  }
  tx.commit();
  return report;
}

MergeReport merge_files(const std::string& a, const std::string& b, const std::string& out,
                        const std::string& template_hash) {
  std::unique_ptr<Database> first = open_for_reading(a);
  std::unique_ptr<Database> second = open_for_reading(b);
  // O_EXCL: an existing OUT, even one created a moment ago by someone else, is never touched.
  // The zero-byte file it leaves is what a read-write open adopts as a new database.
  const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (fd < 0)
    throw Error(ErrorKind::cache,
                fmt::format("cache database {}: cannot create the merge output: {}{}", out,
                            std::strerror(errno),
                            errno == EEXIST ? " (merge never overwrites a file; remove it or "
                                              "choose another -o)"
                                            : ""));
  ::close(fd);
  Database target(out, OpenMode::read_write);
  MergeReport report = merge_database(target, *first, template_hash);
  MergeReport from_b = merge_database(target, *second, template_hash);
  report.added += from_b.added;
  report.identical += from_b.identical;
  report.replaced += from_b.replaced;
  report.kept += from_b.kept;
  report.binaries_added += from_b.binaries_added;
  report.conflicts = std::move(from_b.conflicts); // A went into an empty file: no conflicts
  return report;
}

} // namespace attnjit::cache

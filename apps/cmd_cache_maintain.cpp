// `attnjit cache merge | export | import | verify | prune`: the actions that write or judge.
#include "apps/cmd_cache.h"
#include "apps/cmd_cache_json.h"
#include "cache/maintenance.h"
#include "codegen/embedded_templates.h"

#include <attnjit/error.h>

#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

namespace attnjit::apps {
namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorKind::invalid_argument, fmt::format("cannot read {}", path));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Temp file + rename, so a reader never sees half an export.
void write_text(const std::string& path, const std::string& text) {
  const std::string temp = fmt::format("{}.tmp-{}", path, ::getpid());
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out.flush())
      throw Error(ErrorKind::invalid_argument, fmt::format("cannot write {}", temp));
  }
  std::error_code ec;
  std::filesystem::rename(temp, path, ec);
  if (ec) {
    std::filesystem::remove(temp, ec);
    throw Error(ErrorKind::invalid_argument, fmt::format("cannot write {}", path));
  }
}

void print_merge(const cache::MergeReport& r, const char* existing, const char* incoming) {
  fmt::print("{} added, {} identical, {} conflicts ({} won by {}, {} by {}), {} binaries added\n",
             r.added, r.identical, r.conflicts.size(), r.kept, existing, r.replaced, incoming,
             r.binaries_added);
  for (const cache::MergeConflict& c : r.conflicts) {
    fmt::print("conflict {}\n", cache::to_string(c.key));
    fmt::print("  kept    {} ({}): {}; {:.4f} ms, cv {:.4f}, {} runs\n",
               c.incoming_kept ? incoming : existing, c.rule, to_string(c.kept.config),
               c.kept.median_ms, c.kept.cv, c.kept.runs);
    fmt::print("  dropped {}: {}; {:.4f} ms, cv {:.4f}, {} runs\n",
               c.incoming_kept ? existing : incoming, to_string(c.dropped.config),
               c.dropped.median_ms, c.dropped.cv, c.dropped.runs);
  }
}

} // namespace

int cache_merge(const CacheArgs& args) {
  if (args.operands.size() != 2 || args.output.empty())
    throw Error(ErrorKind::invalid_argument, "usage: attnjit cache merge A B -o OUT");
  const std::string& a = args.operands[0];
  const std::string& b = args.operands[1];
  const cache::MergeReport report = cache::merge_files(a, b, args.output, codegen::template_hash());
  fmt::print("merged {} and {} into {}\n", a, b, args.output);
  print_merge(report, "A", "B");
  return 0;
}

int cache_export(const CacheArgs& args) {
  CacheArgs inputs = args;
  inputs.base.clear(); // one database per export
  const std::vector<std::string> files = input_files(inputs);
  if (files.size() != 1)
    throw Error(ErrorKind::invalid_argument, "export reads one database: FILE or --db");
  std::vector<cache::TuningRecord> records;
  for (cache::StoredRecord& s : cache::open_for_reading(files.front())->records())
    if (args.sku.empty() || s.record.device.sku == args.sku) records.push_back(std::move(s.record));
  const std::string text = records_to_json(records);
  if (args.output.empty() || args.output == "-")
    fmt::print("{}", text);
  else
    write_text(args.output, text);
  return 0;
}

int cache_import(const CacheArgs& args) {
  if (args.operands.size() != 1 || args.db.empty())
    throw Error(ErrorKind::invalid_argument, "usage: attnjit cache import FILE.json --db DB");
  const std::string& file = args.operands.front();
  const std::vector<cache::TuningRecord> records = records_from_json(read_text(file), file);
  cache::Database db(args.db, cache::OpenMode::read_write);
  const cache::MergeReport report = cache::merge_records(db, records, codegen::template_hash());
  fmt::print("imported {} records from {} into {}\n", records.size(), file, args.db);
  print_merge(report, "the database", "the import");
  return 0;
}

int cache_verify(const CacheArgs& args) {
  int exit_code = 0;
  for (const std::string& path : input_files(args)) {
    const cache::VerifyReport report = cache::verify(path, codegen::template_hash());
    fmt::print("{}: {}\n", path,
               report.ok() ? "ok" : fmt::format("{} problems", report.problems.size()));
    for (const std::string& problem : report.problems)
      fmt::print("  problem: {}\n", problem);
    for (const std::string& note : report.notes)
      fmt::print("  {}\n", note);
    if (!report.ok()) exit_code = 1;
  }
  return exit_code;
}

int cache_prune(const CacheArgs& args) {
  if (args.db.empty())
    throw Error(ErrorKind::invalid_argument, "prune needs --db (base databases are read-only)");
  cache::Database db(args.db, cache::OpenMode::read_write);
  const cache::PruneFilter filter{args.older_than_seconds, args.sku, args.stale_templates,
                                  codegen::template_hash()};
  // A dry run is the same deletes in a transaction that is rolled back: prune() joins it.
  cache::sql::WriteTransaction outer(db.connection());
  const cache::PruneReport r = cache::prune(db, filter, cache::unix_now());
  if (!args.dry_run) outer.commit();
  fmt::print("{} {} records, {} binaries, {} unused devices and {} expired claims from {}\n",
             args.dry_run ? "would remove" : "removed", r.records, r.binaries, r.devices, r.claims,
             args.db);
  return 0;
}

} // namespace attnjit::apps

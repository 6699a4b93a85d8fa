// `attnjit cache <action>`: the actions, each a function of the parsed flags. cmd_cache.cpp owns
// the flags and the dispatch; the actions live in cmd_cache_*.cpp by what they do.
#pragma once

#include "apps/problem_options.h"

#include <attnjit/cache.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace attnjit::apps {

struct CacheArgs {
  std::vector<std::string> operands; // the words after the action
  std::string db, base, output, sku, gpu, arch;
  bool json = false, stale_templates = false, dry_run = false;
  std::optional<int64_t> older_than_seconds;
  const ProblemOptions* problem = nullptr;
};

// Read-only views: cmd_cache_view.cpp.
int cache_ls(const CacheArgs& args);
int cache_show(const CacheArgs& args);
int cache_explain(const CacheArgs& args);
int cache_coverage(const CacheArgs& args);

// Changes and checks: cmd_cache_maintain.cpp.
int cache_merge(const CacheArgs& args);
int cache_export(const CacheArgs& args);
int cache_import(const CacheArgs& args);
int cache_verify(const CacheArgs& args);
int cache_prune(const CacheArgs& args);

// The database files an action reads: its operands, else --db and --base. Throws
// Error(invalid_argument) when there are none.
std::vector<std::string> input_files(const CacheArgs& args);

// "30d", "12h", "90m", "45s" -> seconds; throws Error(invalid_argument) otherwise.
int64_t parse_age(const std::string& text);

// One line for a record, as `ls` prints it.
std::string record_line(int64_t id, const cache::TuningRecord& record);

} // namespace attnjit::apps

// `attnjit cache`: inspect and maintain tuning databases. LLVM's cl has no nested subcommands, so
// the action is the first positional word: `attnjit cache ls --db FILE`.
#include "apps/cmd_cache.h"

#include <attnjit/error.h>

#include <fmt/format.h>

#include <cctype>

using namespace llvm;

namespace attnjit::apps {
namespace {

cl::SubCommand CacheCommand("cache", "Inspect and maintain tuning databases: ls, show, explain, "
                                     "merge, export, import, verify, prune, coverage");
cl::list<std::string> Words(cl::Positional, cl::desc("<action> [arguments...]"),
                            cl::sub(CacheCommand), cl::cat(category()));
cl::opt<std::string> Db("db", cl::desc("The database file (the user database when layered)"),
                        cl::sub(CacheCommand), cl::cat(category()));
cl::opt<std::string> Base("base", cl::desc("A read-only base database layered under --db"),
                          cl::sub(CacheCommand), cl::cat(category()));
cl::opt<std::string> Output("o",
                            cl::desc("Output file (merge: required, never overwritten; "
                                     "export: default stdout)"),
                            cl::sub(CacheCommand), cl::cat(category()));
cl::opt<bool> Json("json", cl::desc("export: JSON (the one format; accepted for clarity)"),
                   cl::sub(CacheCommand), cl::cat(category()));
cl::opt<std::string> Sku("sku", cl::desc("ls, coverage, prune: only this GPU (its driver name)"),
                         cl::sub(CacheCommand), cl::cat(category()));
cl::opt<std::string> OlderThan("older-than",
                               cl::desc("prune: records older than this (30d, 12h, "
                                        "90m, 45s)"),
                               cl::sub(CacheCommand), cl::cat(category()));
cl::opt<bool> StaleTemplates("stale-templates",
                             cl::desc("prune: records and binaries of other template hashes"),
                             cl::sub(CacheCommand), cl::cat(category()));
cl::opt<bool> DryRun("dry-run", cl::desc("prune: say what would go, change nothing"),
                     cl::sub(CacheCommand), cl::cat(category()));
cl::opt<std::string> Gpu("gpu", cl::desc("explain, show: the GPU's name (default: GPU 0's)"),
                         cl::sub(CacheCommand), cl::cat(category()));
cl::opt<std::string> Arch("arch",
                          cl::desc("explain: the architecture whose limits and default "
                                   "config apply (default: the GPU's, else sm_90a)"),
                          cl::sub(CacheCommand), cl::cat(category()));
ProblemOptions Problem(CacheCommand);

struct Action {
  const char* name;
  int (*run)(const CacheArgs&);
  const char* usage;
};

constexpr Action kActions[] = {
    {"ls", cache_ls, "ls [FILE...]              list records (of --db and --base without FILEs)"},
    {"show", cache_show, "show ID | show --gpu NAME <problem flags>   one record, every field"},
    {"explain", cache_explain,
     "explain --gpu NAME <problem flags>   each lookup step and why it hit or missed"},
    {"merge", cache_merge,
     "merge A B -o OUT          better-measured record wins; conflicts listed"},
    {"export", cache_export, "export --json [FILE] [-o OUT]   records as JSON"},
    {"import", cache_import, "import JSON --db DB       add records, better-measured wins"},
    {"verify", cache_verify,
     "verify [FILE...]          integrity, records, binaries; exit 1 on damage"},
    {"prune", cache_prune,
     "prune --db DB [--older-than AGE] [--sku NAME] [--stale-templates] [--dry-run]"},
    {"coverage", cache_coverage, "coverage [FILE] [--sku NAME]   specs and shapes tuned per GPU"},
};

std::string usage() {
  std::string text = "usage: attnjit cache <action> ...; actions:\n";
  for (const Action& a : kActions)
    text += fmt::format("  {}\n", a.usage);
  return text;
}

int run_cache() {
  if (Words.empty())
    throw Error(ErrorKind::invalid_argument, "attnjit cache needs an action\n" + usage());
  const std::string action = Words.front();
  CacheArgs args;
  args.operands.assign(Words.begin() + 1, Words.end());
  args.db = Db, args.base = Base, args.output = Output, args.sku = Sku, args.gpu = Gpu;
  args.arch = Arch;
  args.json = Json, args.stale_templates = StaleTemplates, args.dry_run = DryRun;
  if (OlderThan.getNumOccurrences()) args.older_than_seconds = parse_age(OlderThan);
  args.problem = &Problem;
  for (const Action& a : kActions)
    if (action == a.name) return a.run(args);
  throw Error(ErrorKind::invalid_argument,
              fmt::format("unknown cache action '{}'\n{}", action, usage()));
}

Registration registration(CacheCommand, run_cache);

} // namespace

std::vector<std::string> input_files(const CacheArgs& args) {
  std::vector<std::string> files = args.operands;
  if (files.empty()) {
    if (!args.db.empty()) files.push_back(args.db);
    if (!args.base.empty()) files.push_back(args.base);
  }
  if (files.empty())
    throw Error(ErrorKind::invalid_argument, "name a database: a FILE operand, --db or --base");
  return files;
}

int64_t parse_age(const std::string& text) {
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits])))
    ++digits;
  const std::string unit = text.substr(digits);
  const int64_t scale = unit == "d" ? 86400 : unit == "h" ? 3600 : unit == "m" ? 60 : unit == "s";
  if (digits == 0 || digits > 12 || scale == 0)
    throw Error(ErrorKind::invalid_argument,
                fmt::format("--older-than '{}': expected a number and a unit (d, h, m or s), "
                            "such as 30d",
                            text));
  return std::stoll(text.substr(0, digits)) * scale;
}

} // namespace attnjit::apps

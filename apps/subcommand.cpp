#include "apps/subcommand.h"

namespace attnjit::apps {

// Function-local statics: subcommand files register during static initialisation, in an order
// the language leaves open, so nothing here may be a plain global.
llvm::cl::OptionCategory& category() {
  static llvm::cl::OptionCategory options("Subcommand options");
  return options;
}

static std::vector<Subcommand>& registry() {
  static std::vector<Subcommand> table;
  return table;
}

const std::vector<Subcommand>& registered_subcommands() {
  return registry();
}

Registration::Registration(llvm::cl::SubCommand& command, int (*run)()) {
  registry().push_back({&command, run});
}

} // namespace attnjit::apps

// attnjit: generate, compile, run and time JIT attention kernels. One file per subcommand
// (cmd_*.cpp); this file only parses the command line and turns errors into exit codes.
#include "apps/subcommand.h"

#include <attnjit/error.h>

using namespace llvm;

// Catches a first argument that names no subcommand, so we can say so instead of LLVM's
// "Too many positional arguments".
static cl::list<std::string> Stray(cl::Positional, cl::Hidden, cl::cat(attnjit::apps::category()));

int main(int argc, char** argv) {
  cl::HideUnrelatedOptions(attnjit::apps::category());
  cl::SetVersionPrinter([](raw_ostream& os) { os << "attnjit " ATTNJIT_VERSION "\n"; });
  cl::ParseCommandLineOptions(argc, argv, "JIT-generated FlashAttention-2-class kernels\n");

  for (const attnjit::apps::Subcommand& sub : attnjit::apps::registered_subcommands()) {
    if (!*sub.command) continue;
    try {
      return sub.run();
    } catch (const attnjit::Error& e) {
      errs() << "attnjit: error: " << e.what() << "\n";
    } catch (const std::exception& e) {
      errs() << "attnjit: internal error: " << e.what() << "\n";
    }
    return 1;
  }
  if (!Stray.empty()) {
    errs() << "attnjit: error: unknown subcommand '" << Stray.front() << "' (see attnjit --help)\n";
    return 1;
  }
  cl::PrintHelpMessage(/*Hidden=*/false, /*Categorized=*/true); // as --help prints it
  return 1;                                                     // a subcommand is required
}

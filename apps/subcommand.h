// The subcommand table of the `attnjit` CLI (the llvm-xray pattern). Each apps/cmd_*.cpp defines
// its cl::SubCommand and options and registers a run function here at static-init time:
//
//   static llvm::cl::SubCommand Gen("gen", "Print the generated CUDA source");
//   static int run_gen() { ... }
//   static apps::Registration registration(Gen, run_gen);
//
// main.cpp runs the function of whichever subcommand LLVM's parser made active.
#pragma once

#include <llvm/Support/CommandLine.h>

#include <vector>

namespace attnjit::apps {

// Every attnjit option is in this category; main.cpp hides the rest (LLVM Support registers
// flags of its own, such as --color, that mean nothing to our users).
llvm::cl::OptionCategory& category();

struct Subcommand {
  llvm::cl::SubCommand* command;
  int (*run)(); // returns the exit code; may throw attnjit::Error
};

const std::vector<Subcommand>& registered_subcommands();

struct Registration {
  Registration(llvm::cl::SubCommand& command, int (*run)());
};

} // namespace attnjit::apps

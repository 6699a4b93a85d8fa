// `attnjit gen`: print the CUDA source that would be handed to NVRTC, exactly as compiled.
#include "apps/problem_options.h"
#include "codegen/codegen.h"

#include <fmt/format.h>

using namespace llvm;

namespace attnjit::apps {
namespace {

cl::SubCommand Gen("gen", "Print the generated CUDA source of the forward kernel");
ProblemOptions Problem(Gen);
// The source itself does not depend on the arch, but the default tile config does.
cl::opt<std::string> Arch("arch", cl::desc("Architecture whose default tile config to use"),
                          cl::init("sm_90a"), cl::sub(Gen), cl::cat(category()));

int run_gen() {
  const AttentionProblem problem = Problem.problem();
  const TileConfig config = Problem.config(problem.spec, codegen::arch_limits(Arch));
  fmt::print("{}", codegen::generate(problem.spec, config).source);
  return 0;
}

Registration registration(Gen, run_gen);

} // namespace
} // namespace attnjit::apps

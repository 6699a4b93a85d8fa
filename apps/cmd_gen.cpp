// `attnjit gen`: print the CUDA source that would be handed to NVRTC, exactly as compiled.
#include "apps/problem_options.h"
#include "codegen/codegen.h"

#include <fmt/format.h>

using namespace llvm;

namespace attnjit::apps {
namespace {

cl::SubCommand Gen("gen", "Print the generated CUDA source of the forward (or backward) kernel");
ProblemOptions Problem(Gen);
cl::opt<Pass> PassFlag = pass_flag(Gen, "Which pass's source (default fwd)", "the forward kernel",
                                   "the backward's program: D pre-pass, dK/dV kernel, dQ, "
                                   "GQA/MQA reduction");
// The source itself does not depend on the arch, but the default tile config does.
cl::opt<std::string> Arch("arch", cl::desc("Architecture whose default tile config to use"),
                          cl::init("sm_90a"), cl::sub(Gen), cl::cat(category()));

int run_gen() {
  AttentionProblem problem = Problem.problem();
  problem.spec.pass = PassFlag;
  validate(problem); // the backward has limits of its own
  const TileConfig config = Problem.config(problem.spec, codegen::arch_limits(Arch));
  fmt::print("{}", codegen::generate(problem.spec, config).source);
  return 0;
}

Registration registration(Gen, run_gen);

} // namespace
} // namespace attnjit::apps

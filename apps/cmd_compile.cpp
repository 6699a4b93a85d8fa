// `attnjit compile`: generate and NVRTC-compile one kernel and report its resources, as ptxas
// sees them. Needs no GPU: with none, it compiles for sm_90a (the H100 the project targets).
#include "apps/kernel_build.h"
#include "apps/problem_options.h"

#include <attnjit/device.h>
#include <attnjit/error.h>

#include <fmt/format.h>

using namespace llvm;

namespace attnjit::apps {
namespace {

cl::SubCommand
    Compile("compile",
            "Compile the forward (or backward) kernel with NVRTC and show its resources");
ProblemOptions Problem(Compile);
cl::opt<Pass> PassFlag =
    pass_flag(Compile, "Which pass to compile (default fwd)", "the forward kernel",
              "the backward's program; resources are the dK/dV kernel's");
cl::opt<std::string> Arch("arch",
                          cl::desc("NVRTC target, e.g. sm_80, sm_90a (default: GPU 0's, "
                                   "or sm_90a without a GPU)"),
                          cl::sub(Compile), cl::cat(category()));
cl::opt<std::string> DumpDir("dump-dir",
                             cl::desc("Leave kernel.cu, options, log and cubin under this folder "
                                      "(default: $ATTNJIT_DUMP_DIR)"),
                             cl::sub(Compile), cl::cat(category()));

// The target and its limits: --arch if given, else the GPU's own, else sm_90a.
codegen::ArchLimits target_limits() {
  if (Arch.getNumOccurrences()) return codegen::arch_limits(Arch);
  try {
    return limits_of(query_device(0));
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::no_device) throw;
    fmt::print("no GPU ({}); compiling for sm_90a\n", e.what());
    return codegen::arch_limits("sm_90a");
  }
}

int run_compile() {
  AttentionProblem problem = Problem.problem();
  problem.spec.pass = PassFlag;
  validate(problem); // the backward has limits of its own
  const codegen::ArchLimits limits = target_limits();
  const TileConfig config = Problem.config(problem.spec, limits);
  print_build_summary(problem, config, build_kernel(problem, config, limits.arch, DumpDir));
  return 0;
}

Registration registration(Compile, run_compile);

} // namespace
} // namespace attnjit::apps

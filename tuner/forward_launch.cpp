#include "tuner/forward_launch.h"

#include "codegen/forward_launch.h"

namespace attnjit::tuner {

CUresult launch_forward(const CandidateModule& module, const AttentionProblem& problem,
                        const ForwardArgs& args, CUstream stream) {
  const CompiledCandidate& c = module.candidate();
  return codegen::enqueue_forward({module.function(), c.config, c.threads, c.dynamic_smem,
                                   module.resident_ctas(), module.l2_bytes()},
                                  problem, args, stream);
}

} // namespace attnjit::tuner

#include "tuner/forward_launch.h"

#include "runtime/driver.h"

#include <attnjit/error.h>
#include <attnjit/fwd_params.h>

#include <fmt/format.h>

namespace attnjit::tuner {

CandidateModule::CandidateModule(const CompiledCandidate& candidate) : candidate_(candidate) {
  candidate_.cubin.clear(); // the driver keeps the code once loaded
  const runtime::DriverApi& api = runtime::driver();
  if (candidate.kernels.empty() || candidate.cubin.empty())
    throw Error(ErrorKind::invalid_argument,
                fmt::format("candidate {} has no CUBIN or kernel name", candidate.slug));
  runtime::check(api.cuModuleLoadData(&module_, candidate.cubin.data()),
                 fmt::format("cuModuleLoadData({})", candidate.slug).c_str());
  try {
    runtime::check(api.cuModuleGetFunction(&function_, module_, candidate.kernels[0].c_str()),
                   fmt::format("cuModuleGetFunction({})", candidate.kernels[0]).c_str());
    // Above 48 KiB a launch needs the opt-in; the driver refuses what the device cannot give.
    if (candidate.dynamic_smem > 48 * 1024)
      runtime::check(api.cuFuncSetAttribute(function_,
                                            CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                            candidate.dynamic_smem),
                     fmt::format("cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES, {}) for {}",
                                 candidate.dynamic_smem, candidate.slug)
                         .c_str());
  } catch (...) {
    api.cuModuleUnload(module_);
    throw;
  }
}

CandidateModule::~CandidateModule() {
  if (module_) runtime::driver().cuModuleUnload(module_);
}

CUresult launch_forward(const CandidateModule& module, const AttentionProblem& problem,
                        const ForwardArgs& args, CUstream stream) {
  const KernelSpec& s = problem.spec;
  const AttentionShape& sh = problem.shape;
  const CompiledCandidate& c = module.candidate();
  const int64_t m_blocks = (sh.seqlen_q + c.config.block_m - 1) / c.config.block_m;
  FwdParams p{};
  p.q = args.q.data, p.k = args.k.data, p.v = args.v.data;
  p.o = const_cast<void*>(args.o.data);
  p.lse = args.lse;
  p.q_batch_stride = args.q.batch_stride, p.q_seq_stride = args.q.seq_stride;
  p.q_head_stride = args.q.head_stride;
  p.k_batch_stride = args.k.batch_stride, p.k_seq_stride = args.k.seq_stride;
  p.k_head_stride = args.k.head_stride;
  p.v_batch_stride = args.v.batch_stride, p.v_seq_stride = args.v.seq_stride;
  p.v_head_stride = args.v.head_stride;
  p.o_batch_stride = args.o.batch_stride, p.o_seq_stride = args.o.seq_stride;
  p.o_head_stride = args.o.head_stride;
  p.batch = int(sh.batch);
  p.num_heads = s.num_heads;
  p.heads_per_kv = s.num_heads / s.num_kv_heads;
  p.seqlen_q = int(sh.seqlen_q);
  p.seqlen_k = int(sh.seqlen_k);
  p.num_m_blocks = int(m_blocks);
  p.softmax_scale = effective_softmax_scale(problem);
  p.softmax_scale_log2 = p.softmax_scale * 1.4426950408889634f;
  void* kernel_args[] = {&p};
  const unsigned grid = unsigned(m_blocks * sh.batch * s.num_heads);
  return runtime::driver().cuLaunchKernel(module.function(), grid, 1, 1, unsigned(c.threads), 1, 1,
                                          unsigned(c.dynamic_smem), stream, kernel_args, nullptr);
}

bool is_sticky(CUresult r) {
  switch (r) {
  case CUDA_ERROR_ILLEGAL_ADDRESS:
  case CUDA_ERROR_LAUNCH_FAILED:
  case CUDA_ERROR_ILLEGAL_INSTRUCTION:
  case CUDA_ERROR_MISALIGNED_ADDRESS:
  case CUDA_ERROR_INVALID_ADDRESS_SPACE:
  case CUDA_ERROR_INVALID_PC:
  case CUDA_ERROR_HARDWARE_STACK_ERROR:
  case CUDA_ERROR_ASSERT:
  case CUDA_ERROR_LAUNCH_TIMEOUT:
  case CUDA_ERROR_ECC_UNCORRECTABLE:
  case CUDA_ERROR_CONTEXT_IS_DESTROYED:
    return true;
  default:
    return false;
  }
}

std::string describe(CUresult result) {
  const char* name = nullptr;
  const char* text = nullptr;
  runtime::driver().cuGetErrorName(result, &name);
  runtime::driver().cuGetErrorString(result, &text);
  return fmt::format("{} ({})", name ? name : "unknown CUDA error", text ? text : "no description");
}

} // namespace attnjit::tuner

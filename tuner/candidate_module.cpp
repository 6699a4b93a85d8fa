#include "tuner/candidate_module.h"

#include "codegen/forward_launch.h"
#include "runtime/driver.h"

#include <attnjit/error.h>

#include <fmt/format.h>

namespace attnjit::tuner {

CandidateModule::CandidateModule(const CompiledCandidate& candidate, const DeviceInfo& device)
    : candidate_(candidate), l2_bytes_(device.l2_bytes) {
  candidate_.cubin.clear(); // the driver keeps the code once loaded
  const runtime::DriverApi& api = runtime::driver();
  if (candidate.kernels.empty() || candidate.cubin.empty())
    throw Error(ErrorKind::invalid_argument,
                fmt::format("candidate {} has no CUBIN or kernel name", candidate.slug));
  runtime::check(api.cuModuleLoadData(&module_, candidate.cubin.data()),
                 fmt::format("cuModuleLoadData({})", candidate.slug).c_str());
  try {
    for (const std::string& name : candidate.kernels) {
      CUfunction f = nullptr;
      runtime::check(api.cuModuleGetFunction(&f, module_, name.c_str()),
                     fmt::format("cuModuleGetFunction({})", name).c_str());
      functions_.push_back(f);
    }
    // Above 48 KiB a launch needs the opt-in; the driver refuses what the device cannot give.
    if (candidate.dynamic_smem > 48 * 1024)
      runtime::check(api.cuFuncSetAttribute(functions_.front(),
                                            CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                            candidate.dynamic_smem),
                     fmt::format("cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES, {}) for {}",
                                 candidate.dynamic_smem, candidate.slug)
                         .c_str());
    resident_ctas_ = codegen::resident_ctas(functions_.front(), candidate.threads,
                                            candidate.dynamic_smem, device.sm_count);
  } catch (...) {
    api.cuModuleUnload(module_);
    throw;
  }
}

CandidateModule::~CandidateModule() {
  if (module_) runtime::driver().cuModuleUnload(module_);
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

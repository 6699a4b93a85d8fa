// KernelSpec + TileConfig -> CUDA source text for NVRTC. The text is small and readable: a prelude
// comment, one include of the embedded template, and the name expression that instantiates it.
#pragma once

#include <attnjit/spec.h>

#include <string>

namespace attnjit::codegen {

struct GeneratedKernel {
  std::string slug;            // "fwd_mha_d128_bf16_m128n64w4s2"
  std::string source;          // kernel.cu, as `attnjit gen` prints it
  std::string name_expression; // "attnjit::flash_fwd_kernel<...>" for nvrtcAddNameExpression
  int threads = 0;             // block size
  int dynamic_smem = 0;        // bytes
};

// Throws Error(invalid_argument/unsupported) when can_implement says no.
GeneratedKernel generate_forward(const KernelSpec& spec, const TileConfig& config);

} // namespace attnjit::codegen

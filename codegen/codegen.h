// KernelSpec + TileConfig -> CUDA source text for NVRTC. The text is small and readable: a prelude
// comment, one include of the embedded template, and the name expression that instantiates it.
#pragma once

#include <attnjit/spec.h>

#include <string>
#include <vector>

namespace attnjit::codegen {

struct GeneratedKernel {
  std::string slug;            // "fwd_mha_d128_bf16_m128n64w4s2"
  std::string source;          // kernel.cu, as `attnjit gen` prints it
  std::string name_expression; // "attnjit::flash_fwd_kernel<...>" for nvrtcAddNameExpression
  int threads = 0;             // block size of the main kernel
  int dynamic_smem = 0;        // bytes, main kernel
  // Kernels launched around the main one, compiled in the same program (backward: the
  // D = rowsum(dO * O) pre-pass, then the dQ conversion). Their launch shapes are fixed.
  std::vector<std::string> helper_name_expressions;

  // Every kernel of the program, main first: the CompileRequest's name expressions.
  std::vector<std::string> name_expressions() const;
};

// Throws Error(invalid_argument/unsupported) when can_implement says no.
GeneratedKernel generate_forward(const KernelSpec& spec, const TileConfig& config);
GeneratedKernel generate_backward(const KernelSpec& spec, const TileConfig& config);
// Either of the above, by spec.pass.
GeneratedKernel generate(const KernelSpec& spec, const TileConfig& config);

} // namespace attnjit::codegen

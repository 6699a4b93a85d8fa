// Deliberately broken kernels for the tuner's tests. Test-only: they reach NVRTC as the request's
// source (with the real templates as headers), never through templates/, and launch exactly like
// the real kernel (same params, grid, threads and shared memory).
#pragma once

#include "codegen/codegen.h"

#include <string>

namespace attnjit::test {

// The real kernel (forward or backward) with every odd CTA doing an even CTA's work: blockIdx is
// remapped before the templates are included, so about half of the outputs (O and LSE; dQ, dK and
// dV) are never written and stay poisoned.
inline codegen::GeneratedKernel half_output_kernel(const KernelSpec& spec,
                                                   const TileConfig& config) {
  codegen::GeneratedKernel k = codegen::generate(spec, config);
  k.slug += "_half_output";
  k.source =
      R"(// attnjit test kernel: odd CTAs redo the even CTA's rows; the odd rows stay unwritten.
static __device__ __forceinline__ uint3 attnjit_test_even_block() {
  uint3 b = blockIdx;
  b.x &= ~1u;
  return b;
}
#define blockIdx attnjit_test_even_block()
)" + k.source +
      "\n#undef blockIdx\n";
  return k;
}

// A kernel whose first thread stores to an address no allocation has: the launch ends with
// CUDA_ERROR_ILLEGAL_ADDRESS and the context is lost, as with a real out-of-bounds bug.
inline codegen::GeneratedKernel faulting_kernel(const KernelSpec& spec, const TileConfig& config) {
  codegen::GeneratedKernel k = codegen::generate_forward(spec, config);
  k.slug += "_faulting";
  k.source += R"(
namespace attnjit_test {
template <class K>
__global__ void __launch_bounds__(K::kThreads) faulting_kernel(const __grid_constant__ attnjit::FwdParams p) {
  if (threadIdx.x == 0 && blockIdx.x == 0)
    *reinterpret_cast<volatile float*>(static_cast<unsigned long long>(0x10)) = p.softmax_scale;
}
} // namespace attnjit_test
)";
  k.name_expression = "attnjit_test::faulting_kernel<Traits>";
  return k;
}

} // namespace attnjit::test

// The wgmma instructions a Hopper kernel uses, as CUDA source: each lists all N / 2 accumulator
// registers of its thread as operands, which templates cannot spell, so codegen writes them out
// for the few N one kernel needs (specializations of attnjit::Wgmma, templates/attnjit/wgmma.cuh).
#pragma once

#include <attnjit/spec.h>

#include <string>

namespace attnjit::codegen {

// `struct Wgmma<T, n>` with ss<TRANS_A, TRANS_B> (A and B from shared memory) and rs<TRANS_B>
// (A from registers) for m64 n k16, fp32 accumulators.
std::string wgmma_specialization(DType dtype, int n);

} // namespace attnjit::codegen

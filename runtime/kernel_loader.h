// Compiled programs loaded as driver modules: once per (source, arch, options) per process.
#pragma once

#include "runtime/nvrtc_compiler.h"

#include <cuda.h>
#include <memory>
#include <vector>

namespace attnjit::runtime {

struct LoadedKernel {
  CUmodule module = nullptr;
  CUfunction function = nullptr;     // the first name expression's: attributes below are its
  std::vector<CUfunction> functions; // one per name expression, in the request's order
  int registers = 0;                 // per thread
  int static_smem = 0;               // bytes
  int local_bytes = 0;               // per thread; > 0 means spills
  int max_threads = 0;
  int dynamic_smem = 0; // bytes the launch will ask for (opt-in attribute already set)
};

// Compiles (or reuses a compile of the same request in this process), loads it on `device` and
// sets the dynamic shared memory limit to `dynamic_smem`. Thread-safe.
std::shared_ptr<const LoadedKernel> load_kernel(const CompileRequest& request, int device,
                                                int dynamic_smem);

// The same for a program compiled earlier (the binary cache's cubin): no NVRTC work. The request
// names the kernels and keys the per-process cache, as above.
std::shared_ptr<const LoadedKernel> load_compiled(const CompiledProgram& program,
                                                  const CompileRequest& request, int device,
                                                  int dynamic_smem);

} // namespace attnjit::runtime

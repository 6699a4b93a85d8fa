// Generate + NVRTC-compile one kernel and print what ptxas made of it. Shared by `compile` and by
// `run` on a machine without a GPU; needs no GPU itself.
#pragma once

#include "codegen/codegen.h"
#include "runtime/nvrtc_compiler.h"

#include "codegen/tile_rules.h"

#include <attnjit/device.h>
#include <attnjit/spec.h>

#include <string>

namespace attnjit::apps {

struct KernelBuild {
  codegen::GeneratedKernel kernel;
  runtime::CompiledProgram program;
  std::string arch;
};

// A GPU's own limits, so that an arch codegen::arch_limits() does not list still works.
codegen::ArchLimits limits_of(const DeviceInfo& device);

// Throws Error(invalid_argument/unsupported) from codegen, Error(compile) from NVRTC.
KernelBuild build_kernel(const AttentionProblem& problem, const TileConfig& config,
                         const std::string& arch, const std::string& dump_dir = "");

// slug, arch, registers, spills, stack, shared memory, cubin size and compile time, one a line.
void print_build_summary(const AttentionProblem& problem, const TileConfig& config,
                         const KernelBuild& build);

} // namespace attnjit::apps

#include "apps/kernel_build.h"

#include <attnjit/format.h>

#include <fmt/format.h>

#include <algorithm>

namespace attnjit::apps {

codegen::ArchLimits limits_of(const DeviceInfo& device) {
  // 1024 threads per block is the CUDA limit on every architecture since Fermi.
  return {device.arch(), device.max_smem_per_block, 1024};
}

KernelBuild build_kernel(const AttentionProblem& problem, const TileConfig& config,
                         const std::string& arch, const std::string& dump_dir) {
  KernelBuild build{codegen::generate(problem.spec, config), {}, arch};
  runtime::CompileRequest request;
  request.source = build.kernel.source;
  request.program_name = build.kernel.slug;
  request.name_expressions = build.kernel.name_expressions();
  request.arch = arch;
  build.program = runtime::compile(request, dump_dir);
  return build;
}

// ptxas reports every kernel in the program; ours is the one the name expression lowered to.
static const runtime::ResourceUsage* usage_of_kernel(const runtime::CompiledProgram& program) {
  if (program.resources.empty()) return nullptr;
  if (!program.lowered_names.empty()) {
    auto it = std::find_if(program.resources.begin(), program.resources.end(),
                           [&](const auto& r) { return r.kernel == program.lowered_names[0]; });
    if (it != program.resources.end()) return &*it;
  }
  return &program.resources.front();
}

void print_build_summary(const AttentionProblem& problem, const TileConfig& config,
                         const KernelBuild& build) {
  fmt::print("problem    {} {}\n", problem.spec, problem.shape);
  fmt::print("config     {}\n", config);
  fmt::print("kernel     {}\n", build.kernel.slug);
  fmt::print("arch       {}\n", build.arch);
  if (const runtime::ResourceUsage* usage = usage_of_kernel(build.program)) {
    fmt::print("registers  {} per thread, {} threads per CTA\n", usage->registers,
               build.kernel.threads);
    fmt::print("spills     {} B stored, {} B loaded\n", usage->spill_store_bytes,
               usage->spill_load_bytes);
    fmt::print("stack      {} B\n", usage->stack_bytes);
    fmt::print("smem       {} B static + {} B dynamic\n", usage->static_smem_bytes,
               build.kernel.dynamic_smem);
  } else {
    fmt::print("registers  unknown (ptxas reported no resource usage)\n");
    fmt::print("smem       {} B dynamic\n", build.kernel.dynamic_smem);
  }
  fmt::print("cubin      {} B\n", build.program.cubin.size());
  fmt::print("compile    {:.1f} ms\n", build.program.compile_ms);
}

} // namespace attnjit::apps

#include "codegen/codegen.h"

#include "codegen/embedded_templates.h"
#include "codegen/tile_rules.h"

#include <attnjit/error.h>

#include <fmt/format.h>

namespace attnjit::codegen {

static const char* element_type(DType d) {
  return d == DType::bf16 ? "attnjit::bf16_t" : "attnjit::fp16_t";
}

GeneratedKernel generate_forward(const KernelSpec& spec, const TileConfig& config) {
  validate(spec);
  if (spec.pass != Pass::forward)
    throw Error(ErrorKind::invalid_argument, "generate_forward needs a forward spec");
  // Shape rules that hold on every architecture; device limits are checked where the device is
  // known (plan creation, compile --arch).
  if (std::string why = why_not(spec, config, arch_limits("sm_90a")); !why.empty())
    throw Error(ErrorKind::invalid_argument, fmt::format("cannot generate {} with {}: {}",
                                                         to_string(spec), to_string(config), why));

  GeneratedKernel k;
  k.slug = kernel_slug(spec, config);
  k.threads = config.num_warps * 32;
  k.dynamic_smem = forward_smem_bytes(spec, config);
  k.name_expression = "attnjit::flash_fwd_kernel<Traits>";
  k.source = fmt::format(
      R"(// attnjit generated kernel: {slug}
// spec:   {spec}
// config: {config}
// templates: {hash}
// launch: {threads} threads, {smem} bytes dynamic shared memory,
//         grid.x = ceil(seqlen_q / {block_m}) * batch * num_heads
#include <attnjit/fwd_kernel.cuh>

using Traits = attnjit::FwdTraits<{dtype},
                                  /*HEAD_DIM=*/{d},
                                  /*BLOCK_M=*/{block_m},
                                  /*BLOCK_N=*/{block_n},
                                  /*NUM_WARPS=*/{warps},
                                  /*STAGES=*/{stages},
                                  /*CAUSAL=*/{causal},
                                  /*Q_IN_REGS=*/{q_regs}>;

// Instantiated by NVRTC through the name expression "{name}".
)",
      fmt::arg("slug", k.slug), fmt::arg("spec", to_string(spec)),
      fmt::arg("config", to_string(config)), fmt::arg("hash", template_hash()),
      fmt::arg("threads", k.threads), fmt::arg("smem", k.dynamic_smem),
      fmt::arg("dtype", element_type(spec.dtype)), fmt::arg("d", spec.head_dim_qk),
      fmt::arg("block_m", config.block_m), fmt::arg("block_n", config.block_n),
      fmt::arg("warps", config.num_warps), fmt::arg("stages", config.num_stages),
      fmt::arg("causal", spec.mask == Mask::causal ? "true" : "false"),
      fmt::arg("q_regs", config.q_in_registers ? "true" : "false"),
      fmt::arg("name", k.name_expression));
  return k;
}

} // namespace attnjit::codegen

#include "codegen/codegen.h"

#include "codegen/embedded_templates.h"
#include "codegen/tile_rules.h"
#include "codegen/wgmma_source.h"

#include <attnjit/error.h>

#include <fmt/format.h>

#include <algorithm>

namespace attnjit::codegen {

static const char* element_type(DType d) {
  return d == DType::bf16 ? "attnjit::bf16_t" : "attnjit::fp16_t";
}

std::vector<std::string> GeneratedKernel::name_expressions() const {
  std::vector<std::string> all{name_expression};
  all.insert(all.end(), helper_name_expressions.begin(), helper_name_expressions.end());
  return all;
}

// Shape rules that hold on every architecture; device limits are checked where the device is
// known (plan creation, compile --arch).
static void require_implementable(const KernelSpec& spec, const TileConfig& config, Pass pass) {
  validate(spec);
  if (spec.pass != pass)
    throw Error(ErrorKind::invalid_argument,
                fmt::format("a {} kernel cannot be generated from the spec {}", to_string(pass),
                            to_string(spec)));
  if (std::string why = why_not(spec, config, arch_limits("sm_90a")); !why.empty())
    throw Error(ErrorKind::invalid_argument, fmt::format("cannot generate {} with {}: {}",
                                                         to_string(spec), to_string(config), why));
}

GeneratedKernel generate(const KernelSpec& spec, const TileConfig& config) {
  return spec.pass == Pass::forward ? generate_forward(spec, config)
                                    : generate_backward(spec, config);
}

// flash_fwd_wide_kernel: the same launch as flash_fwd_kernel; the warps split O by columns.
static GeneratedKernel generate_wide_forward(const KernelSpec& spec, const TileConfig& config) {
  GeneratedKernel k;
  k.slug = kernel_slug(spec, config);
  k.threads = config.num_warps * 32;
  k.dynamic_smem = forward_smem_bytes(spec, config);
  k.name_expression = "attnjit::flash_fwd_wide_kernel<Traits>";
  k.source = fmt::format(
      R"(// attnjit generated kernel: {slug}
// spec:   {spec}
// config: {config}
// templates: {hash}
// launch: {threads} threads, {smem} bytes dynamic shared memory,
//         grid.x = ceil(seqlen_q / {block_m}) * batch * num_heads
#include <attnjit/fwd_wide_kernel.cuh>

using Traits = attnjit::FwdWideTraits<{dtype},
                                      /*HEAD_DIM_QK=*/{d},
                                      /*HEAD_DIM_V=*/{dv},
                                      /*BLOCK_M=*/{block_m},
                                      /*BLOCK_N=*/{block_n},
                                      /*NUM_WARPS=*/{warps},
                                      /*STAGES=*/{stages},
                                      /*CAUSAL=*/{causal},
                                      /*V_FROM_K=*/{v_from_k}>;
static_assert(Traits::kSmemBytes == {smem}, "codegen's shared-memory rule disagrees with the traits");

// Instantiated by NVRTC through the name expression "{name}".
)",
      fmt::arg("slug", k.slug), fmt::arg("spec", to_string(spec)),
      fmt::arg("config", to_string(config)), fmt::arg("hash", template_hash()),
      fmt::arg("threads", k.threads), fmt::arg("smem", k.dynamic_smem),
      fmt::arg("dtype", element_type(spec.dtype)), fmt::arg("d", spec.head_dim_qk),
      fmt::arg("dv", spec.head_dim_v), fmt::arg("block_m", config.block_m),
      fmt::arg("block_n", config.block_n), fmt::arg("warps", config.num_warps),
      fmt::arg("stages", config.num_stages),
      fmt::arg("causal", spec.mask == Mask::causal ? "true" : "false"),
      fmt::arg("v_from_k", spec.layout == Layout::v_in_k ? "true" : "false"),
      fmt::arg("name", k.name_expression));
  return k;
}

// flash_fwd_wgmma_kernel: the same launch as flash_fwd_kernel, for sm_90a only. The
// warp-specialized flash_fwd_ws_kernel launches one more warpgroup and takes the TMA tensor
// maps as a second argument. The wgmma instructions for S (N = block_n) and O (N = head_dim_v)
// are written out here.
static GeneratedKernel generate_wgmma_forward(const KernelSpec& spec, const TileConfig& config) {
  const bool ws = config.warp_specialized;
  GeneratedKernel k;
  k.slug = kernel_slug(spec, config);
  k.threads = config.num_warps * 32;
  k.dynamic_smem = forward_smem_bytes(spec, config);
  k.name_expression =
      ws ? "attnjit::flash_fwd_ws_kernel<Traits>" : "attnjit::flash_fwd_wgmma_kernel<Traits>";
  std::string instructions = wgmma_specialization(spec.dtype, config.block_n);
  if (spec.head_dim_v != config.block_n)
    instructions += wgmma_specialization(spec.dtype, spec.head_dim_v);
  k.source = fmt::format(
      R"(// attnjit generated kernel: {slug}
// spec:   {spec}
// config: {config}
// templates: {hash}
// launch: {threads} threads, {smem} bytes dynamic shared memory,
//         grid.x = {grid}ceil(seqlen_q / {block_m}) * batch * num_heads; sm_90a only{tma}
#include <attnjit/wgmma.cuh>

namespace attnjit {{
{instructions}}} // namespace attnjit

#include <attnjit/{header}>

using Traits = attnjit::{traits}<{dtype},
                                       /*HEAD_DIM_QK=*/{d},
                                       /*HEAD_DIM_V=*/{dv},
                                       /*BLOCK_M=*/{block_m},
                                       /*BLOCK_N=*/{block_n},
                                       /*STAGES=*/{stages},
                                       /*CAUSAL=*/{causal}{walk}>;
static_assert(Traits::kSmemBytes == {smem}, "codegen's shared-memory rule disagrees with the traits");{own_o}

// Instantiated by NVRTC through the name expression "{name}".
)",
      fmt::arg("slug", k.slug), fmt::arg("spec", to_string(spec)),
      fmt::arg("config", to_string(config)), fmt::arg("hash", template_hash()),
      fmt::arg("threads", k.threads), fmt::arg("smem", k.dynamic_smem),
      fmt::arg("tma", ws ? "; arguments (FwdParams, FwdTmaParams)" : ""),
      fmt::arg("instructions", instructions),
      fmt::arg("header", ws ? "fwd_ws_kernel.cuh" : "fwd_wgmma_kernel.cuh"),
      fmt::arg("traits", ws ? "FwdWsTraits" : "FwdWgmmaTraits"),
      fmt::arg("dtype", element_type(spec.dtype)), fmt::arg("d", spec.head_dim_qk),
      fmt::arg("dv", spec.head_dim_v), fmt::arg("block_m", config.block_m),
      fmt::arg("block_n", config.block_n), fmt::arg("stages", config.num_stages),
      fmt::arg("causal", spec.mask == Mask::causal ? "true" : "false"),
      fmt::arg("walk", !ws ? ""
                       : forward_walks_tiles(spec, config)
                           ? ",\n                                       /*WALK_TILES=*/true"
                           : ",\n                                       /*WALK_TILES=*/false"),
      // The launch encodes O's tensor map only where the kernel stores O by TMA.
      fmt::arg(
          "own_o",
          !ws ? ""
          : forward_o_has_own_smem(spec, config)
              ? "\nstatic_assert(Traits::kOwnO, \"codegen's O rule disagrees with the traits\");"
              : "\nstatic_assert(!Traits::kOwnO, \"codegen's O rule disagrees with the traits\");"),
      fmt::arg("grid", forward_walks_tiles(spec, config)
                           ? "min(tiles, CTAs the GPU holds at once), each taking tiles\n"
                             "//         blockIdx.x + k * gridDim.x; tiles = "
                           : ""),
      fmt::arg("name", k.name_expression));
  return k;
}

GeneratedKernel generate_forward(const KernelSpec& spec, const TileConfig& config) {
  require_implementable(spec, config, Pass::forward);
  if (uses_wide_forward(spec)) return generate_wide_forward(spec, config);
  if (config.wgmma) return generate_wgmma_forward(spec, config);

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
                                  /*HEAD_DIM_QK=*/{d},
                                  /*HEAD_DIM_V=*/{dv},
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
      fmt::arg("dv", spec.head_dim_v), fmt::arg("block_m", config.block_m),
      fmt::arg("block_n", config.block_n), fmt::arg("warps", config.num_warps),
      fmt::arg("stages", config.num_stages),
      fmt::arg("causal", spec.mask == Mask::causal ? "true" : "false"),
      fmt::arg("q_regs", config.q_in_registers ? "true" : "false"),
      fmt::arg("name", k.name_expression));
  return k;
}

// The backward's source opens with what it launches and how: the pre-pass, the main dK/dV kernel
// (`main`, described by `main_what`), the dQ kernel and the GQA/MQA reduction.
static std::string backward_preamble(const KernelSpec& spec, const TileConfig& config,
                                     const GeneratedKernel& k, const char* main_what) {
  return fmt::format(
      R"(// attnjit generated kernel: {slug}
// spec:   {spec}
// config: {config}
// templates: {hash}
// launches, in order, on one stream (on sm_90 and later each after the first may start while
// the one before finishes, and waits where it reads what that one wrote):
//   {dsum}: D = rowsum(dO * O), and zeroes the fp32 dQ accumulator;
//       128 threads, grid.x = ceil(seqlen_q / 128) * batch * num_heads
//   {main}: {main_what};
//       {threads} threads, {smem} bytes dynamic shared memory,
//       grid.x = ceil(seqlen_k / {block_n}) * batch * num_kv_heads (* kv_splits)
//   {reduce}: GQA/MQA split over several CTAs per key block only: sums their fp32 dK/dV
//       partials in a fixed order; 256 threads, grid-stride
//   {dq}: {dq_what}
)",
      fmt::arg("slug", k.slug), fmt::arg("spec", to_string(spec)),
      fmt::arg("config", to_string(config)), fmt::arg("hash", template_hash()),
      fmt::arg("dsum", k.helper_name_expressions[0]), fmt::arg("main", k.name_expression),
      fmt::arg("main_what", main_what), fmt::arg("threads", k.threads),
      fmt::arg("smem", k.dynamic_smem), fmt::arg("block_n", config.block_n),
      fmt::arg("dq", k.helper_name_expressions[1]),
      fmt::arg("reduce", k.helper_name_expressions[2]),
      fmt::arg("dq_what", spec.deterministic
                              ? fmt::format("dQ without atomics, recomputing P and dS; 128 "
                                            "threads, {} bytes dynamic shared memory, grid.x = "
                                            "ceil(seqlen_q / 64) * batch * num_heads",
                                            backward_dq_smem_bytes(spec))
                              : std::string("dQ = scale * accumulator; 256 threads, grid-stride")));
}

// flash_bwd_dkdv_wgmma_kernel (sm_90a) in place of flash_bwd_dkdv_kernel; the launches around it
// are the same. The warp-specialized flash_bwd_dkdv_ws_kernel launches one more warpgroup and
// takes the TMA tensor maps as a second argument. The wgmma instructions for S^T and dP^T
// (N = 64 queries), dK (N = head_dim_qk), dV (N = head_dim_v) and dQ (N = head_dim_qk /
// computing warpgroups) are written out here.
static GeneratedKernel generate_wgmma_backward(const KernelSpec& spec, const TileConfig& config,
                                               GeneratedKernel k) {
  const bool ws = config.warp_specialized;
  k.name_expression = ws ? "attnjit::flash_bwd_dkdv_ws_kernel<Traits>"
                         : "attnjit::flash_bwd_dkdv_wgmma_kernel<Traits>";
  std::vector<int> sizes;
  for (int n : {64, spec.head_dim_qk, spec.head_dim_v, backward_dq_columns(spec, config)})
    if (std::find(sizes.begin(), sizes.end(), n) == sizes.end()) sizes.push_back(n);
  std::string instructions;
  for (int n : sizes)
    instructions += wgmma_specialization(spec.dtype, n);
  k.source =
      backward_preamble(spec, config, k,
                        ws ? "dK, dV and the fp32 dQ accumulator (sm_90a); arguments (BwdParams, "
                             "BwdTmaParams)"
                           : "dK, dV and the fp32 dQ accumulator (sm_90a)") +
      fmt::format(
          R"(#include <attnjit/bwd_kernel.cuh>
#include <attnjit/wgmma.cuh>

namespace attnjit {{
{instructions}}} // namespace attnjit

#include <attnjit/{header}>

using Traits = attnjit::{traits}<{dtype},
                                       /*HEAD_DIM_QK=*/{dqk},
                                       /*HEAD_DIM_V=*/{dv},
                                       /*BLOCK_N=*/{block_n},
                                       /*CAUSAL=*/{causal},
                                       /*DETERMINISTIC=*/{det}{stages}>;
static_assert(Traits::kSmemBytes == {smem}, "codegen's shared-memory rule disagrees with the traits");
)",
          fmt::arg("instructions", instructions),
          fmt::arg("stages",
                   ws ? fmt::format(",\n                                       /*STAGES=*/{}",
                                    config.num_stages)
                      : std::string()),
          fmt::arg("header", ws ? "bwd_ws_kernel.cuh" : "bwd_wgmma_kernel.cuh"),
          fmt::arg("traits", ws ? "BwdWsTraits" : "BwdWgmmaTraits"),
          fmt::arg("dtype", element_type(spec.dtype)), fmt::arg("dqk", spec.head_dim_qk),
          fmt::arg("dv", spec.head_dim_v), fmt::arg("block_n", config.block_n),
          fmt::arg("causal", spec.mask == Mask::causal ? "true" : "false"),
          fmt::arg("det", spec.deterministic ? "true" : "false"), fmt::arg("smem", k.dynamic_smem));
  return k;
}

GeneratedKernel generate_backward(const KernelSpec& spec, const TileConfig& config) {
  require_implementable(spec, config, Pass::backward);
  GeneratedKernel k;
  k.slug = kernel_slug(spec, config);
  k.threads = config.num_warps * 32;
  k.dynamic_smem = backward_smem_bytes(spec, config);
  k.name_expression = "attnjit::flash_bwd_dkdv_kernel<Traits>";
  const std::string dsum = fmt::format("attnjit::flash_bwd_dsum_kernel<{}, {}, {}>",
                                       element_type(spec.dtype), spec.head_dim_qk, spec.head_dim_v);
  const std::string dq =
      spec.deterministic
          ? fmt::format("attnjit::flash_bwd_dq_deterministic_kernel<attnjit::BwdDqTraits<{}, {}, "
                        "{}, {}>>",
                        element_type(spec.dtype), spec.head_dim_qk, spec.head_dim_v,
                        spec.mask == Mask::causal ? "true" : "false")
      : config.warp_specialized
          // Its dQ accumulator comes in tiles of backward_dq_columns.
          ? fmt::format("attnjit::flash_bwd_dq_tiled_kernel<{}, {}, {}>", element_type(spec.dtype),
                        spec.head_dim_qk, backward_dq_columns(spec, config))
          : fmt::format("attnjit::flash_bwd_dq_kernel<{}, {}>", element_type(spec.dtype),
                        spec.head_dim_qk);
  const std::string reduce =
      fmt::format("attnjit::flash_bwd_dkv_reduce_kernel<{}, {}, {}>", element_type(spec.dtype),
                  spec.head_dim_qk, spec.head_dim_v);
  k.helper_name_expressions = {dsum, dq, reduce};
  if (config.wgmma) return generate_wgmma_backward(spec, config, std::move(k));
  k.source =
      backward_preamble(spec, config, k, "dK, dV and the fp32 dQ accumulator") +
      fmt::format(R"(#include <attnjit/bwd_kernel.cuh>

using Traits = attnjit::BwdTraits<{dtype},
                                  /*HEAD_DIM_QK=*/{dqk},
                                  /*HEAD_DIM_V=*/{dv},
                                  /*BLOCK_M=*/{block_m},
                                  /*BLOCK_N=*/{block_n},
                                  /*NUM_WARPS=*/{warps},
                                  /*CAUSAL=*/{causal},
                                  /*DETERMINISTIC=*/{det}>;
)",
                  fmt::arg("dtype", element_type(spec.dtype)), fmt::arg("dqk", spec.head_dim_qk),
                  fmt::arg("dv", spec.head_dim_v), fmt::arg("block_m", config.block_m),
                  fmt::arg("block_n", config.block_n), fmt::arg("warps", config.num_warps),
                  fmt::arg("causal", spec.mask == Mask::causal ? "true" : "false"),
                  fmt::arg("det", spec.deterministic ? "true" : "false"));
  return k;
}

} // namespace attnjit::codegen

#include "apps/problem_options.h"

namespace attnjit::apps {

llvm::cl::OptionCategory& problem_category() {
  static llvm::cl::OptionCategory category("Problem (defaults: MHA, bf16, B=1 S=4096 H=32 D=128)");
  return category;
}

llvm::cl::OptionCategory& tile_category() {
  static llvm::cl::OptionCategory category(
      "Tile config (a flag left out keeps the default config's value for the problem)");
  return category;
}

// An option the user gave wins; otherwise `fallback` (a default or another flag's value).
template <class T, class U> static T given_or(const llvm::cl::opt<T>& option, U fallback) {
  return option.getNumOccurrences() > 0 ? option.getValue() : static_cast<T>(fallback);
}

AttentionProblem ProblemOptions::problem() const {
  AttentionProblem problem;
  KernelSpec& spec = problem.spec;
  spec.dtype = dtype_;
  spec.num_heads = heads_;
  spec.num_kv_heads = given_or(kv_heads_, heads_.getValue());
  spec.head_dim_qk = head_dim_;
  spec.head_dim_v = given_or(head_dim_v_, head_dim_.getValue());
  spec.layout = layout_;
  spec.mask = causal_ ? Mask::causal : Mask::none;
  problem.shape.batch = batch_;
  problem.shape.seqlen_q = given_or(seqlen_q_, seqlen_.getValue());
  problem.shape.seqlen_k = given_or(seqlen_k_, seqlen_.getValue());
  problem.softmax_scale = scale_;
  validate(problem);
  return problem;
}

std::optional<TileConfig> ProblemOptions::config_override(const KernelSpec& spec,
                                                          const codegen::ArchLimits& limits) const {
  const bool any = block_m_.getNumOccurrences() || block_n_.getNumOccurrences() ||
                   warps_.getNumOccurrences() || stages_.getNumOccurrences() ||
                   q_in_regs_.getNumOccurrences() || wgmma_.getNumOccurrences() ||
                   warp_specialized_.getNumOccurrences();
  if (!any) return std::nullopt;
  TileConfig config = codegen::default_config(spec, limits);
  config.block_m = given_or(block_m_, config.block_m);
  config.block_n = given_or(block_n_, config.block_n);
  config.num_warps = given_or(warps_, config.num_warps);
  config.num_stages = given_or(stages_, config.num_stages);
  config.q_in_registers = given_or(q_in_regs_, config.q_in_registers);
  config.wgmma = given_or(wgmma_, config.wgmma);
  // --wgmma alone names the kernel whose warpgroups all load; the warp-specialized one is
  // --wgmma --warp-specialized. Only with neither flag does the default's choice stand.
  config.warp_specialized =
      given_or(warp_specialized_, wgmma_.getNumOccurrences() ? false : config.warp_specialized);
  return config;
}

TileConfig ProblemOptions::config(const KernelSpec& spec, const codegen::ArchLimits& limits) const {
  if (std::optional<TileConfig> config = config_override(spec, limits)) return *config;
  return codegen::default_config(spec, limits);
}

} // namespace attnjit::apps

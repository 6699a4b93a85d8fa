// The flags that describe an AttentionProblem and, optionally, a TileConfig. gen, compile and run
// each own one ProblemOptions bound to their cl::SubCommand, so the same flags work in all three:
//
//   attnjit gen --dtype=fp16 --heads=32 --kv-heads=8 --head-dim=64 --causal --block-n=128
//
// Nothing is checked here: attnjit::validate() and codegen name what is wrong, so the CLI, the
// C++ API and the tuner reject the same things with the same words.
#pragma once

#include "apps/subcommand.h"
#include "codegen/tile_rules.h"

#include <attnjit/spec.h>

#include <cstdint>
#include <optional>

namespace attnjit::apps {

// Help sections of the flags below.
llvm::cl::OptionCategory& problem_category();
llvm::cl::OptionCategory& tile_category();

// --pass=fwd|bwd of subcommand `sub` (default fwd); `forward` and `backward` say what each
// means there. Returned as a prvalue, so a subcommand declares it as a global:
//   llvm::cl::opt<Pass> PassFlag = pass_flag(Gen, "...", "...", "...");
inline llvm::cl::opt<Pass> pass_flag(llvm::cl::SubCommand& sub, const char* help,
                                     const char* forward, const char* backward) {
  return llvm::cl::opt<Pass>("pass", llvm::cl::desc(help),
                             llvm::cl::values(clEnumValN(Pass::forward, "fwd", forward),
                                              clEnumValN(Pass::backward, "bwd", backward)),
                             llvm::cl::init(Pass::forward), llvm::cl::sub(sub),
                             llvm::cl::cat(category()));
}

class ProblemOptions {
public:
  explicit ProblemOptions(llvm::cl::SubCommand& sub) : sub_(sub) {}

  // The problem the flags describe, validated (throws Error naming the first bad field).
  AttentionProblem problem() const;

  // nullopt when no tile flag was given. Otherwise codegen's default config for `spec` on
  // `limits` with the given flags applied, so `--warps=8` alone changes just the warps.
  std::optional<TileConfig> config_override(const KernelSpec& spec,
                                            const codegen::ArchLimits& limits) const;
  TileConfig config(const KernelSpec& spec, const codegen::ArchLimits& limits) const;

private:
  template <class T> using opt = llvm::cl::opt<T>;
  using desc = llvm::cl::desc;

  // Declared first: the options below bind to it in their initialisers.
  llvm::cl::SubCommand& sub_;
  llvm::cl::sub in_sub{sub_};
  llvm::cl::cat in_problem{problem_category()};
  llvm::cl::cat in_tile{tile_category()};

  // The problem. Initial values come from the spec.h aggregates; the help texts quote them,
  // so keep those in step when a default changes.
  opt<DType> dtype_{"dtype",
                    desc("Element type of Q, K, V and O (default bf16)"),
                    llvm::cl::values(clEnumValN(DType::bf16, "bf16", "bfloat16"),
                                     clEnumValN(DType::fp16, "fp16", "IEEE half")),
                    llvm::cl::init(KernelSpec{}.dtype),
                    in_sub,
                    in_problem};
  opt<int64_t> batch_{"batch", desc("Batch size (default 1)"),
                      llvm::cl::init(AttentionShape{}.batch), in_sub, in_problem};
  opt<int64_t> seqlen_{"seqlen", desc("Query and key sequence length (default 4096)"),
                       llvm::cl::init(AttentionShape{}.seqlen_q), in_sub, in_problem};
  opt<int64_t> seqlen_q_{"seqlen-q", desc("Query sequence length (overrides --seqlen)"), in_sub,
                         in_problem};
  opt<int64_t> seqlen_k_{"seqlen-k", desc("Key/value sequence length (overrides --seqlen)"), in_sub,
                         in_problem};
  opt<int> heads_{"heads", desc("Query heads (default 32)"), llvm::cl::init(KernelSpec{}.num_heads),
                  in_sub, in_problem};
  opt<int> kv_heads_{"kv-heads", desc("Key/value heads (default: --heads; fewer is GQA, 1 is MQA)"),
                     in_sub, in_problem};
  opt<int> head_dim_{"head-dim", desc("Head dimension of Q and K (default 128)"),
                     llvm::cl::init(KernelSpec{}.head_dim_qk), in_sub, in_problem};
  opt<int> head_dim_v_{"head-dim-v", desc("Head dimension of V and O (default: --head-dim)"),
                       in_sub, in_problem};
  opt<bool> causal_{"causal", desc("Causal mask (query i sees keys 0..i)"), in_sub, in_problem};
  opt<Layout> layout_{
      "layout",
      desc("How Q, K and V arrive (default separate)"),
      llvm::cl::values(clEnumValN(Layout::separate, "separate", "three tensors"),
                       clEnumValN(Layout::packed_qkv, "packed", "one [B, S, 3, H, D] buffer"),
                       clEnumValN(Layout::v_in_k, "v-in-k",
                                  "Q and K only; V is K's first --head-dim-v columns "
                                  "(absorbed MLA, 576/512)")),
      llvm::cl::init(KernelSpec{}.layout),
      in_sub,
      in_problem};
  opt<float> scale_{"scale", desc("Softmax scale (default: 1/sqrt(head dim))"), in_sub, in_problem};

  // The tile config; each flag left out keeps the default config's value.
  opt<int> block_m_{"block-m", desc("Query rows per CTA"), in_sub, in_tile};
  opt<int> block_n_{"block-n", desc("Keys per main-loop step"), in_sub, in_tile};
  opt<int> warps_{"warps", desc("Warps per CTA"), in_sub, in_tile};
  opt<int> stages_{"stages", desc("K/V shared-memory pipeline depth"), in_sub, in_tile};
  opt<bool> q_in_regs_{"q-in-regs", desc("Keep Q fragments in registers"), in_sub, in_tile};
  opt<bool> wgmma_{
      "wgmma",
      desc("Hopper warpgroup MMA path (sm_90a only); alone, the kernel whose warpgroups all load"),
      in_sub, in_tile};
  opt<bool> warp_specialized_{"warp-specialized",
                              desc("With --wgmma: one extra warpgroup only loads, with TMA"),
                              in_sub, in_tile};
};

} // namespace attnjit::apps

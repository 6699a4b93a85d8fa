// The candidate space of one problem on one device, and the one can_implement that prunes it
// and says why. Before compiling it applies codegen's rules (warp layout, shared memory, the
// register estimate) and the shape's (grid size); after compiling, what ptxas reported (spills).
#pragma once

#include "codegen/tile_rules.h"
#include "runtime/nvrtc_compiler.h"

#include <attnjit/spec.h>

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace attnjit::tuner {

// Why a config cannot run. `reason` is a class for counting; `detail` the rule's own words.
struct Verdict {
  std::string reason; // "" when implementable, else one of the kReason* below
  std::string detail;
  bool ok() const { return reason.empty(); }
};

inline constexpr const char* kReasonTileShape = "tile shape";  // warps, multiples, stages
inline constexpr const char* kReasonSmem = "shared memory";    // over the device's opt-in limit
inline constexpr const char* kReasonRegisters = "registers";   // codegen's accumulator estimate
inline constexpr const char* kReasonSpills = "spills";         // ptxas spilled past the limit
inline constexpr const char* kReasonGrid = "grid";             // more CTAs than a launch allows
inline constexpr const char* kReasonCompile = "compile error"; // NVRTC refused the source

struct PruneRules {
  // Spill stores + loads per thread (ptxas) a candidate may have. The FlashAttention-2 default
  // (128x64, 4 warps, d128) spills 152 B on sm_90a and is still the fastest of its row in
  // docs/PERF.md, so a few spilled registers are tolerated; hundreds mean a loop spills.
  int max_spill_bytes = 256;
};

// Before compiling.
Verdict can_implement(const AttentionProblem& problem, const TileConfig& config,
                      const codegen::ArchLimits& device);
// After compiling: the same, plus the resources ptxas reported for the program's kernels.
Verdict can_implement(const AttentionProblem& problem, const TileConfig& config,
                      const codegen::ArchLimits& device,
                      std::span<const runtime::ResourceUsage> usage, const PruneRules& rules);

// Every config the tuner considers for `spec`: its own grid plus whatever codegen::candidates
// offers, without duplicates, in a fixed order. The forward's grid: block_m 64..256, block_n
// 32..128, 4 or 8 warps, 2 or 3 stages, Q in registers or not (72). The backward's: block_m
// 16..128, block_n 32..256, 2, 4 or 8 warps, 2 stages (48; the backward has no other axes).
std::vector<TileConfig> tuning_grid(const KernelSpec& spec, const codegen::ArchLimits& device);

struct Space {
  TileConfig default_config;        // codegen::default_config: the baseline, always accepted
  std::vector<TileConfig> accepted; // the default first, then grid order
  std::vector<std::pair<TileConfig, Verdict>> pruned;
};

// Throws what codegen::default_config throws for a spec no config can serve.
Space enumerate(const AttentionProblem& problem, const codegen::ArchLimits& device);

// At most `budget` accepted configs (all when budget <= 0): the default, then a random sample
// drawn with `seed`, so two runs with the same budget try the same configs.
std::vector<TileConfig> sample(const Space& space, int budget, uint64_t seed);

// (reason, count), most frequent first, then by name.
std::vector<std::pair<std::string, int>>
count_reasons(const std::vector<std::pair<TileConfig, Verdict>>& pruned);

} // namespace attnjit::tuner

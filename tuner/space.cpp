#include "tuner/space.h"

#include "tuner/select.h"

#include <fmt/format.h>

#include <algorithm>
#include <climits>
#include <map>
#include <random>

namespace attnjit::tuner {
namespace {

// codegen::why_not speaks in sentences; the counts want classes. Its words are stable ("shared
// memory", "spill"), and an unknown sentence still counts, as a tile-shape rule.
std::string classify(const std::string& why) {
  if (why.find("shared memory") != std::string::npos) return kReasonSmem;
  if (why.find("spill") != std::string::npos || why.find("register") != std::string::npos)
    return kReasonRegisters;
  return kReasonTileShape;
}

// The main kernel's grid. The backward's is ceil(Sk / block_n) * B * KV * kv_splits, and
// kv_splits (codegen/backward_launch.cpp) reaches at most the group size: B * H bounds it.
int64_t grid_blocks(const AttentionProblem& problem, const TileConfig& config) {
  const bool forward = problem.spec.pass == Pass::forward;
  const int64_t seqlen = forward ? problem.shape.seqlen_q : problem.shape.seqlen_k;
  const int block = forward ? config.block_m : config.block_n;
  return (seqlen + block - 1) / block * problem.shape.batch * problem.spec.num_heads;
}

} // namespace

Verdict can_implement(const AttentionProblem& problem, const TileConfig& config,
                      const codegen::ArchLimits& device) {
  if (std::string why = codegen::why_not(problem.spec, config, device); !why.empty())
    return {classify(why), why};
  if (config.block_m > 0 && config.block_n > 0 && grid_blocks(problem, config) > INT_MAX)
    return {kReasonGrid,
            fmt::format("{} CTAs exceed the grid limit {}", grid_blocks(problem, config), INT_MAX)};
  return {};
}

Verdict can_implement(const AttentionProblem& problem, const TileConfig& config,
                      const codegen::ArchLimits& device,
                      std::span<const runtime::ResourceUsage> usage, const PruneRules& rules) {
  if (Verdict before = can_implement(problem, config, device); !before.ok()) return before;
  for (const runtime::ResourceUsage& kernel : usage) {
    const int spilled = kernel.spill_store_bytes + kernel.spill_load_bytes;
    if (spilled > rules.max_spill_bytes)
      return {kReasonSpills,
              fmt::format("ptxas spills {} B stored + {} B loaded per thread ({} registers), "
                          "over the limit of {} B",
                          kernel.spill_store_bytes, kernel.spill_load_bytes, kernel.registers,
                          rules.max_spill_bytes)};
  }
  return {};
}

namespace {

// What BwdTraits exposes: block_m, block_n and warps (the Q/dO ring has two stages, Q is never in
// registers; the warp-specialized kernel's third stage comes from codegen::candidates). Its
// static_asserts (16-key tiles per warp, warps covering block_m's 16-row tiles of dQ) and the
// register estimate prune most of the 48: on sm_90a 8 are left for d128, where
// codegen::candidates alone has 4, and 13 for d64.
std::vector<TileConfig> backward_grid() {
  std::vector<TileConfig> grid;
  for (int block_m : {16, 32, 64, 128})
    for (int block_n : {32, 64, 128, 256})
      for (int warps : {2, 4, 8})
        grid.push_back({block_m, block_n, warps, 2, false});
  return grid;
}

std::vector<TileConfig> forward_grid() {
  std::vector<TileConfig> grid;
  // 256 query rows only with 8 warps: 4 warps would hold 64 rows each, past any register budget.
  for (int block_m : {64, 128, 256})
    for (int block_n : {32, 64, 128})
      for (int warps : {4, 8})
        for (int stages : {2, 3})
          for (bool q_regs : {false, true})
            grid.push_back({block_m, block_n, warps, stages, q_regs});
  return grid;
}

} // namespace

std::vector<TileConfig> tuning_grid(const KernelSpec& spec, const codegen::ArchLimits& device) {
  std::vector<TileConfig> grid = spec.pass == Pass::forward ? forward_grid() : backward_grid();
  // What codegen offers joins, so a new axis value there is tuned without touching this grid.
  for (const TileConfig& c : codegen::candidates(spec, device))
    if (std::find(grid.begin(), grid.end(), c) == grid.end()) grid.push_back(c);
  return grid;
}

Space enumerate(const AttentionProblem& problem, const codegen::ArchLimits& device) {
  Space space;
  space.default_config = codegen::default_config(problem.spec, device);
  space.accepted.push_back(space.default_config);
  for (const TileConfig& c : tuning_grid(problem.spec, device)) {
    if (c == space.default_config) continue;
    Verdict verdict = can_implement(problem, c, device);
    if (verdict.ok())
      space.accepted.push_back(c);
    else
      space.pruned.emplace_back(c, std::move(verdict));
  }
  return space;
}

std::vector<TileConfig> sample(const Space& space, int budget, uint64_t seed) {
  if (budget <= 0 || size_t(budget) >= space.accepted.size()) return space.accepted;
  std::vector<TileConfig> rest(space.accepted.begin() + 1, space.accepted.end());
  // std::shuffle's algorithm is the library's choice; this Fisher-Yates with mt19937_64 is ours,
  // so the sample is the same on every platform.
  std::mt19937_64 rng(seed);
  for (size_t i = rest.size(); i > 1; --i)
    std::swap(rest[i - 1], rest[rng() % i]);
  rest.resize(size_t(budget) - 1);
  std::sort(rest.begin(), rest.end(), config_less);
  rest.insert(rest.begin(), space.accepted.front());
  return rest;
}

std::vector<std::pair<std::string, int>>
count_reasons(const std::vector<std::pair<TileConfig, Verdict>>& pruned) {
  std::map<std::string, int> counts;
  for (const auto& [config, verdict] : pruned)
    ++counts[verdict.reason];
  std::vector<std::pair<std::string, int>> out(counts.begin(), counts.end());
  std::stable_sort(out.begin(), out.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  return out;
}

} // namespace attnjit::tuner

#include "codegen/tile_rules.h"

#include <attnjit/error.h>

#include <fmt/format.h>

#include <optional>

namespace attnjit::codegen {

ArchLimits arch_limits(const std::string& arch) {
  // Opt-in shared memory per block, from the CUDA programming guide's per-CC table.
  if (arch == "sm_80") return {arch, 166912, 1024};
  if (arch == "sm_86" || arch == "sm_87" || arch == "sm_89") return {arch, 101376, 1024};
  if (arch == "sm_90" || arch == "sm_90a") return {arch, 232448, 1024};
  if (arch == "sm_100" || arch == "sm_100a") return {arch, 232448, 1024};
  throw Error(ErrorKind::unsupported,
              fmt::format("unknown architecture '{}' (supported: sm_80, sm_86, sm_87, sm_89, "
                          "sm_90, sm_90a, sm_100, sm_100a)",
                          arch));
}

static int padded_cols(int d) {
  return (d + 63) / 64 * 64;
}

int forward_smem_bytes(const KernelSpec& spec, const TileConfig& c) {
  const int row_bytes = padded_cols(spec.head_dim_qk) * 2;
  return c.block_m * row_bytes + 2 * c.num_stages * c.block_n * row_bytes;
}

// fp32 accumulators a thread keeps live across the main loop (O, S, and Q when resident).
// Over ~200 the kernel spills on sm_80/sm_90 (255 registers per thread, the rest for addressing).
static int accumulator_registers(const KernelSpec& spec, const TileConfig& c) {
  const int m_tiles = c.block_m / (16 * c.num_warps);
  const int d = spec.head_dim_qk;
  int regs = m_tiles * (d / 8) * 4 + m_tiles * (c.block_n / 8) * 4;
  if (c.q_in_registers) regs += m_tiles * (d / 16) * 4;
  return regs;
}

std::string why_not(const KernelSpec& spec, const TileConfig& c, const ArchLimits& limits) {
  if (c.num_warps <= 0 || c.block_m <= 0 || c.block_n <= 0 || c.num_stages <= 0)
    return fmt::format("tile sizes must be positive ({})", to_string(c));
  if (c.num_warps * 32 > limits.max_threads_per_block)
    return fmt::format("{} warps exceed {} threads per block", c.num_warps,
                       limits.max_threads_per_block);
  if (c.block_m % (16 * c.num_warps) != 0)
    return fmt::format("block_m {} is not a multiple of 16 * num_warps ({})", c.block_m,
                       16 * c.num_warps);
  if (c.block_n % 16 != 0) return fmt::format("block_n {} is not a multiple of 16", c.block_n);
  if (c.num_stages < 2)
    return fmt::format("num_stages {} < 2: the K/V ring needs two", c.num_stages);
  if (spec.head_dim_qk % 16 != 0)
    return fmt::format("head dim {} is not a multiple of 16", spec.head_dim_qk);
  const int smem = forward_smem_bytes(spec, c);
  if (smem > limits.max_smem_per_block)
    return fmt::format("needs {} bytes of shared memory, {} allows {}", smem, limits.arch,
                       limits.max_smem_per_block);
  const int regs = accumulator_registers(spec, c);
  if (regs > 200)
    return fmt::format("{} accumulator registers per thread would spill (limit 200)", regs);
  return {};
}

std::vector<TileConfig> candidates(const KernelSpec& spec, const ArchLimits& limits) {
  std::vector<TileConfig> out;
  for (int block_m : {64, 128})
    for (int block_n : {32, 64, 128})
      for (int warps : {4, 8})
        for (int stages : {2, 3})
          for (bool q_regs : {false, true}) {
            TileConfig c{block_m, block_n, warps, stages, q_regs};
            if (why_not(spec, c, limits).empty()) out.push_back(c);
          }
  return out;
}

TileConfig default_config(const KernelSpec& spec, const ArchLimits& limits) {
  // FlashAttention-2's forward table (sm80+, no dropout); d256 takes 64 query rows because 128
  // overflow sm_80's shared memory.
  const int d = spec.head_dim_qk;
  TileConfig c = d <= 64    ? TileConfig{128, 128, 4, 2, false}
                 : d <= 128 ? TileConfig{128, 64, 4, 2, false}
                            : TileConfig{64, 64, 4, 2, false};
  // Smaller parts (sm_86: 99 KiB): the largest two-stage tile that fits.
  if (!why_not(spec, c, limits).empty()) {
    std::optional<TileConfig> best;
    for (const TileConfig& k : candidates(spec, limits))
      if (k.num_stages == 2 && !k.q_in_registers &&
          (!best || k.block_m * k.block_n > best->block_m * best->block_n))
        best = k;
    if (best) c = *best;
  }
  if (std::string why = why_not(spec, c, limits); !why.empty())
    throw Error(ErrorKind::unsupported, fmt::format("no default tile config for {} on {}: {}",
                                                    to_string(spec), limits.arch, why));
  return c;
}

} // namespace attnjit::codegen

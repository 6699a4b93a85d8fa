// CUTLASS's host contract for our kernels: which TileConfigs can run a spec on a device
// (and why not), which ones the tuner should try, and the default when nothing is tuned.
#pragma once

#include <attnjit/spec.h>

#include <string>
#include <vector>

namespace attnjit::codegen {

struct ArchLimits {
  std::string arch;       // "sm_90a"
  int max_smem_per_block; // opt-in limit, bytes
  int max_threads_per_block;
};

// Limits of a known architecture, for work without a GPU ("sm_80", "sm_86", "sm_89", "sm_90a").
ArchLimits arch_limits(const std::string& arch);

// Which forward kernel a spec gets: flash_fwd_kernel (fwd_kernel.cuh), whose warps own 16 full
// rows of O, or for head_dim_v > 256, where those rows alone would take Dv / 2 = 256+ registers a
// thread, flash_fwd_wide_kernel (fwd_wide_kernel.cuh), whose warps own column slices of O.
bool uses_wide_forward(const KernelSpec& spec);

// Empty string: implementable. Otherwise the reason, e.g. "block_m 96 is not a multiple of
// 16 * num_warps (64)".
std::string why_not(const KernelSpec& spec, const TileConfig& config, const ArchLimits& limits);

// Every config the tuner may try for this spec (all pass why_not for `limits`).
std::vector<TileConfig> candidates(const KernelSpec& spec, const ArchLimits& limits);

// Untuned choice by head dim (forward or backward by spec.pass): on sm_90a the wgmma kernels where
// they apply, else FlashAttention-2's tables.
TileConfig default_config(const KernelSpec& spec, const ArchLimits& limits);

// Warps that compute: all of them, or for a warp-specialized config all but the loading
// warpgroup's four.
int computing_warps(const TileConfig& config);

// Whether the warp-specialized forward's CTAs walk several tiles (FwdWsTraits' WALK_TILES), the
// launch capping the grid at the CTAs the GPU holds: without a causal mask (causal tiles differ
// in length, and a fixed stride would give one CTA the longest of every round) and where the
// accumulators leave room for the tile loop's registers (docs/PERF.md, session 7: d128 653 vs
// 632 TFLOP/s walking, S=2048 585 vs 563; d256 at 128 x 80, whose 188 accumulator registers
// spill 324 B when walking, 662 vs 684).
bool forward_walks_tiles(const KernelSpec& spec, const TileConfig& config);
// Whether the warp-specialized forward gives O shared memory of its own (FwdWsTraits::kOwnO):
// where its CTAs walk tiles and O fits next to the rest in sm_90's 227 KiB, so the next tile's Q
// may land while the warps store O. Else O is staged in Q's place and stored by TMA, through
// the O tensor map.
bool forward_o_has_own_smem(const KernelSpec& spec, const TileConfig& config);
// Bytes of dynamic shared memory the forward kernel (or the backward's main kernel) asks for.
int forward_smem_bytes(const KernelSpec& spec, const TileConfig& config);
int backward_smem_bytes(const KernelSpec& spec, const TileConfig& config);
// Columns of dQ each computing warpgroup of the wgmma backward accumulates (BwdWgmmaTraits::
// kDqCols): its slice of head_dim_qk over all the CTA's keys where head_dim_qk splits into whole
// 64-column groups, else all of head_dim_qk over its own 64 keys.
int backward_dq_columns(const KernelSpec& spec, const TileConfig& config);
// The deterministic backward's dQ kernel (fixed 64 x 64 tiles, 4 warps).
int backward_dq_smem_bytes(const KernelSpec& spec);

} // namespace attnjit::codegen

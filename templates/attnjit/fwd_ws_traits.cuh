// Compile-time shape of the warp-specialized Hopper forward: the wgmma forward's tiles, computed
// by BLOCK_M / 64 warpgroups, plus one more warpgroup that only loads (TMA, one thread) and
// hands most of its registers to the others.
#pragma once

#include <attnjit/fwd_wgmma_traits.cuh>
#include <attnjit/tma.cuh>

namespace attnjit {

template <class T_, int HEAD_DIM_QK, int HEAD_DIM_V, int BLOCK_M, int BLOCK_N, int STAGES,
          bool CAUSAL, bool WALK_TILES>
struct FwdWsTraits : FwdWgmmaTraits<T_, HEAD_DIM_QK, HEAD_DIM_V, BLOCK_M, BLOCK_N, STAGES, CAUSAL> {
  using Base = FwdWgmmaTraits<T_, HEAD_DIM_QK, HEAD_DIM_V, BLOCK_M, BLOCK_N, STAGES, CAUSAL>;
  // Base::kThreads (the computing warpgroups) is what the softmax and epilogue see.
  static constexpr int kComputeWarpgroups = BLOCK_M / 64;
  static constexpr int kLaunchThreads = Base::kThreads + 128;

  // Where O is staged in Q's place, it is laid out as TMA stores it (128-byte swizzled 64-column
  // groups, the same bytes as Base::OTile). Its own space keeps Base::OTile, which the warps
  // store themselves: staged as OTmaTile there, d128 measured 1% slower (session 10).
  using OTmaTile = SwizzledTile<BLOCK_M, HEAD_DIM_V>;
  static_assert(OTmaTile::kBytes <= Base::kQOSpan, "O staged in Q's place fits Q's span");
  static_assert(Base::kWarps == 4 * kComputeWarpgroups, "four warps a computing warpgroup");

  // Barriers after the tiles: Q full, Q empty, then per slot K full, V full, K empty, V empty.
  static constexpr int kBarrierBytes = (2 + 4 * STAGES) * 8;
  static constexpr int kBarrierSpan = (kBarrierBytes + 127) / 128 * 128;
  // WALK_TILES (codegen's forward_walks_tiles): a CTA walks tiles blockIdx.x, blockIdx.x +
  // gridDim.x, ..., the launch capping the grid at the CTAs the GPU holds. Else one tile per CTA,
  // and no tile loop to keep registers for.
  static constexpr bool kWalkTiles = WALK_TILES;
  // Walking, O gets its own space where that fits sm_90's 227 KiB, so the next tile's Q can land
  // while this tile's O is written; else O is staged in Q's place and the next Q waits for it.
  static constexpr int kOSpan = (Base::OTile::kBytes + 1023) / 1024 * 1024;
  static constexpr bool kOwnO = WALK_TILES && Base::kSmemBytes + kOSpan + kBarrierSpan <= 232448;
  static constexpr int kSmemBytes = Base::kSmemBytes + (kOwnO ? kOSpan : 0) + kBarrierSpan;

  // A loader that walks tiles spilled 12 B (d128) to 72 B (192/128) with 24 or 32 registers;
  // 40 leave the two computing warpgroups 232 each (the pool is 168 x 384).
  using Registers = WsRegisters<Base::kThreads, kSmemBytes, WALK_TILES ? 40 : 24>;

  static_assert(kComputeWarpgroups >= 1 && kComputeWarpgroups <= 3,
                "one to three computing warpgroups");
  static_assert(BLOCK_M <= 256 && BLOCK_N <= 256, "a TMA box spans at most 256 rows");
};

} // namespace attnjit

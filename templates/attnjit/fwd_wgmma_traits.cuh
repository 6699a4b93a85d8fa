// Compile-time shape of the Hopper (wgmma) forward: each warpgroup of 4 warps owns 64 query
// rows, so BLOCK_M = 64 * warpgroups; K and V tile rings of STAGES slots each.
#pragma once

#include <attnjit/smem_tile.cuh>
#include <attnjit/wgmma.cuh>

namespace attnjit {

template <class T_, int HEAD_DIM_QK, int HEAD_DIM_V, int BLOCK_M, int BLOCK_N, int STAGES,
          bool CAUSAL>
struct FwdWgmmaTraits {
  using T = T_;
  static constexpr int kDqk = HEAD_DIM_QK;
  static constexpr int kDv = HEAD_DIM_V;
  static constexpr int kBlockM = BLOCK_M;
  static constexpr int kBlockN = BLOCK_N;
  static constexpr int kWarps = BLOCK_M / 16;
  static constexpr int kThreads = kWarps * 32;
  static constexpr int kStages = STAGES;
  static constexpr bool kCausal = CAUSAL;

  // What stage_output (fwd_epilogue.cuh) reads: one 16-row MMA tile per warp.
  static constexpr int kMTiles = 1;
  static constexpr int kNTiles = BLOCK_N / 8;      // n8 column groups of S
  static constexpr int kDTiles = HEAD_DIM_V / 8;   // n8 column groups of O
  static constexpr int kKSteps = HEAD_DIM_QK / 16; // k16 steps of Q K^T
  static constexpr int kPSteps = BLOCK_N / 16;     // k16 steps of P V

  static_assert(BLOCK_M % 64 == 0, "each warpgroup owns 64 query rows");
  static_assert(HEAD_DIM_QK % 64 == 0 && HEAD_DIM_V % 64 == 0,
                "wgmma tiles hold whole 64-column groups");
  static_assert(HEAD_DIM_V <= 256 && BLOCK_N <= 256, "wgmma's N is at most 256");
  static_assert(BLOCK_N % 16 == 0, "P V steps over 16 keys at a time");
  static_assert(STAGES >= 2, "step n reads K_n while K_{n+1} lands");

  using QTile = SwizzledTile<BLOCK_M, HEAD_DIM_QK>;
  using KTile = SwizzledTile<BLOCK_N, HEAD_DIM_QK>;
  using VTile = SwizzledTile<BLOCK_N, HEAD_DIM_V>;
  // Stages O on the way out, in Q's place (the warp-specialized kernel: where O has no space
  // of its own, FwdWsTraits::OTmaTile instead).
  using OTile = SmemTile<BLOCK_M, HEAD_DIM_V>;
  static constexpr int kQOBytes = QTile::kBytes > OTile::kBytes ? QTile::kBytes : OTile::kBytes;
  // Every tile starts 1024-byte aligned (the swizzle atoms); the extra 1024 aligns the base.
  static constexpr int kQOSpan = (kQOBytes + 1023) / 1024 * 1024;
  static constexpr int kSmemBytes = 1024 + kQOSpan + STAGES * (KTile::kBytes + VTile::kBytes);
};

} // namespace attnjit

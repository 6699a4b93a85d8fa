// Compile-time shape of one forward kernel: the TileConfig and spec fields codegen bakes in,
// plus what follows from them. Shape rules are static_asserts so a bad instantiation fails
// with a readable message even if the host-side checks were bypassed.
#pragma once

#include <attnjit/smem_tile.cuh>

namespace attnjit {

template <class T_, int HEAD_DIM_QK, int HEAD_DIM_V, int BLOCK_M, int BLOCK_N, int NUM_WARPS,
          int STAGES, bool CAUSAL, bool Q_IN_REGS>
struct FwdTraits {
  using T = T_;
  static constexpr int kDqk = HEAD_DIM_QK;
  static constexpr int kDv = HEAD_DIM_V;
  static constexpr int kBlockM = BLOCK_M;
  static constexpr int kBlockN = BLOCK_N;
  static constexpr int kWarps = NUM_WARPS;
  static constexpr int kThreads = NUM_WARPS * 32;
  static constexpr int kStages = STAGES;
  static constexpr bool kCausal = CAUSAL;
  static constexpr bool kQInRegs = Q_IN_REGS;

  static constexpr int kWarpRows = BLOCK_M / NUM_WARPS; // query rows owned by one warp
  static constexpr int kMTiles = kWarpRows / 16;        // m16 MMA tiles per warp
  static constexpr int kNTiles = BLOCK_N / 8;           // n8 tiles of S = Q K^T
  static constexpr int kDTiles = HEAD_DIM_V / 8;        // n8 tiles of O
  static constexpr int kKSteps = HEAD_DIM_QK / 16;      // k16 steps of Q K^T
  static constexpr int kPSteps = BLOCK_N / 16;          // k16 steps of P V

  static_assert(HEAD_DIM_QK % 16 == 0 && HEAD_DIM_V % 16 == 0,
                "head dims must be multiples of 16 (MMA k-step, ldmatrix pairs)");
  static_assert(BLOCK_M % (16 * NUM_WARPS) == 0, "each warp owns whole 16-row MMA tiles");
  static_assert(BLOCK_N % 16 == 0, "block_n must be a multiple of 16");
  static_assert(STAGES >= 2, "the K/V pipeline needs at least two stages");

  using QTile = SmemTile<BLOCK_M, HEAD_DIM_QK>; // (BLOCK_M, Dqk)
  using OTile =
      SmemTile<BLOCK_M, HEAD_DIM_V>; // (BLOCK_M, Dv): stages O on the way out, in Q's place
  using KTile = SmemTile<BLOCK_N, HEAD_DIM_QK>; // (BLOCK_N, Dqk), one K stage
  using VTile = SmemTile<BLOCK_N, HEAD_DIM_V>;  // (BLOCK_N, Dv), one V stage
  static constexpr int kQOBytes = QTile::kBytes > OTile::kBytes ? QTile::kBytes : OTile::kBytes;
  static constexpr int kSmemBytes = kQOBytes + STAGES * (KTile::kBytes + VTile::kBytes);
};

} // namespace attnjit

// Compile-time shape of the wide-Dv forward (head_dim_v > 256, e.g. absorbed MLA's 576/512),
// whose O accumulator does not fit one warp's registers for 16 full rows (Dv / 2 = 256 floats a
// thread). The warps take two layouts, one per GEMM:
//   S = Q K^T: one 16-row tile per group of kSplit warps, each with kSplitKeys of the keys;
//   O += P V:  every warp holds all BLOCK_M rows of a Dv / NUM_WARPS column slice.
// P and the row maxima cross between the two through shared memory. codegen's tile rules
// (codegen/tile_rules.cpp) mirror these static_asserts.
#pragma once

#include <attnjit/smem_tile.cuh>

namespace attnjit {

template <class T_, int HEAD_DIM_QK, int HEAD_DIM_V, int BLOCK_M, int BLOCK_N, int NUM_WARPS,
          int STAGES, bool CAUSAL, bool V_FROM_K>
struct FwdWideTraits {
  using T = T_;
  static constexpr int kDqk = HEAD_DIM_QK;
  static constexpr int kDv = HEAD_DIM_V;
  static constexpr int kBlockM = BLOCK_M;
  static constexpr int kBlockN = BLOCK_N;
  static constexpr int kWarps = NUM_WARPS;
  static constexpr int kThreads = NUM_WARPS * 32;
  static constexpr int kStages = STAGES;
  static constexpr bool kCausal = CAUSAL;
  static constexpr bool kVFromK = V_FROM_K; // V is K's first Dv columns: K's tile serves both

  // S = Q K^T
  static constexpr int kRowTiles = BLOCK_M / 16;       // 16-row tiles of S
  static constexpr int kSplit = NUM_WARPS / kRowTiles; // warps sharing one row tile
  static constexpr int kSplitKeys = BLOCK_N / kSplit;  // keys of one warp's S slice
  static constexpr int kSTiles = kSplitKeys / 8;       // n8 tiles of that slice
  static constexpr int kKSteps = HEAD_DIM_QK / 16;     // k16 steps of Q K^T
  // O += P V
  static constexpr int kOCols = HEAD_DIM_V / NUM_WARPS; // one warp's column slice of O
  static constexpr int kMTiles = BLOCK_M / 16;          // m16 tiles of O (all rows)
  static constexpr int kDTiles = kOCols / 8;            // n8 tiles of the slice
  static constexpr int kPSteps = BLOCK_N / 16;          // k16 steps of P V

  static_assert(HEAD_DIM_QK % 64 == 0 && HEAD_DIM_V % 64 == 0,
                "wide head dims are whole 64-column swizzle groups");
  static_assert(!V_FROM_K || HEAD_DIM_V <= HEAD_DIM_QK, "V from K needs Dv <= Dqk");
  static_assert(BLOCK_M % 16 == 0 && BLOCK_N % 16 == 0, "block sizes are whole 16-row tiles");
  static_assert(NUM_WARPS % kRowTiles == 0, "each 16-row tile of S gets the same number of warps");
  static_assert(kSplitKeys % 16 == 0, "each S warp's keys are whole 16-key ldmatrix tiles");
  static_assert(kOCols % 64 == 0,
                "each warp's O slice is whole 64-column swizzle groups (keeps V addresses "
                "compile-time offsets)");
  static_assert(STAGES >= 2, "the K/V pipeline needs at least two stages");

  using QTile = SmemTile<BLOCK_M, HEAD_DIM_QK>; // (BLOCK_M, Dqk)
  using OTile = SmemTile<BLOCK_M, HEAD_DIM_V>;  // (BLOCK_M, Dv): stages O in Q's place
  using KTile = SmemTile<BLOCK_N, HEAD_DIM_QK>; // (BLOCK_N, Dqk), one K stage
  // (BLOCK_N, Dv) one V stage; with V_FROM_K, K's own tile, read through its first Dv columns.
  using VTile = SmemTile<BLOCK_N, V_FROM_K ? HEAD_DIM_QK : HEAD_DIM_V>;
  using PTile = SmemTile<BLOCK_M, BLOCK_N>; // (BLOCK_M, BLOCK_N) probabilities in T

  static constexpr int kQOBytes = QTile::kBytes > OTile::kBytes ? QTile::kBytes : OTile::kBytes;
  static constexpr int kVBytes = V_FROM_K ? 0 : VTile::kBytes; // one separate V stage
  static constexpr int kKOffset = kQOBytes;
  static constexpr int kVOffset = kKOffset + STAGES * KTile::kBytes;
  static constexpr int kPOffset = kVOffset + STAGES * kVBytes;
  // fp32 row statistics: kSplit partial maxima, kSplit partial sums, one rescale factor per row.
  static constexpr int kStatsOffset = kPOffset + PTile::kBytes;
  static constexpr int kSmemBytes = kStatsOffset + (2 * kSplit + 1) * BLOCK_M * 4;
};

} // namespace attnjit

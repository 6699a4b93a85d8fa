// Compile-time shape of the Hopper (wgmma) dK/dV kernel: the CTA owns BLOCK_N keys, 64 per
// warpgroup, and walks 64-query blocks; every tile sits in 128-byte swizzled shared memory.
#pragma once

#include <attnjit/wgmma.cuh>

namespace attnjit {

template <class T_, int HEAD_DIM_QK, int HEAD_DIM_V, int BLOCK_N, bool CAUSAL, bool DETERMINISTIC>
struct BwdWgmmaTraits {
  using T = T_;
  static constexpr int kDqk = HEAD_DIM_QK;
  static constexpr int kDv = HEAD_DIM_V;
  static constexpr int kBlockM = 64; // queries per step: S^T's N
  static constexpr int kBlockN = BLOCK_N;
  static constexpr int kWarpgroups = BLOCK_N / 64;
  static constexpr int kWarps = BLOCK_N / 16;
  static constexpr int kThreads = kWarps * 32;
  static constexpr bool kCausal = CAUSAL;
  static constexpr bool kAccumulateDq = !DETERMINISTIC; // else bwd_dq_kernel.cuh computes dQ
  // dQ = dS K: each warpgroup takes a slice of dQ's columns (N), over all BLOCK_N keys. Where
  // Dqk does not split into whole 64-column groups (d64 on two warpgroups), each warpgroup
  // instead takes all of dQ's columns over its own 64 keys, and the partial sums meet in the
  // fp32 workspace: no warpgroup then reads another's dS^T, so no barrier spans them.
  static constexpr bool kDqOverOwnKeys = kWarpgroups > 1 && (HEAD_DIM_QK / kWarpgroups) % 64 != 0;
  static constexpr int kDqCols = kDqOverOwnKeys ? HEAD_DIM_QK : HEAD_DIM_QK / kWarpgroups;
  // S^T = K Q^T and dP^T = V dO^T with K and V as register A operands, loaded once per CTA:
  // with both operands in shared memory a 64 x 64 x 16 wgmma reads as many bytes as shared
  // memory delivers while the tensor cores work. The fragments cost (Dqk + Dv) / 4 registers a
  // thread, which only d64 can spare. Measured at d64: +0-1% without a mask, +2-3% causal
  // (docs/PERF.md, session 9), so shared memory was not d64's main limit.
  static constexpr bool kKvInRegisters = HEAD_DIM_QK + HEAD_DIM_V <= 128;

  static_assert(BLOCK_N % 64 == 0, "each warpgroup owns 64 keys");
  static_assert(HEAD_DIM_QK % 64 == 0 && HEAD_DIM_V % 64 == 0,
                "wgmma tiles hold whole 64-column groups");
  static_assert(HEAD_DIM_QK <= 256 && HEAD_DIM_V <= 256, "wgmma's N is at most 256");

  using KTile = SwizzledTile<BLOCK_N, HEAD_DIM_QK>;
  using VTile = SwizzledTile<BLOCK_N, HEAD_DIM_V>;
  using QTile = SwizzledTile<kBlockM, HEAD_DIM_QK>;          // x 2 stages
  using DoTile = SwizzledTile<kBlockM, HEAD_DIM_V>;          // x 2 stages
  using DsTile = SwizzledTile<BLOCK_N, kBlockM>;             // dS^T, A of dQ = dS K read M-major
  static constexpr int kRowStatsBytes = 2 * 2 * kBlockM * 4; // LSE and D, 2 stages, fp32

  // 1 KiB aligns the base for the swizzle atoms; every tile is a multiple of 1 KiB.
  static constexpr int kSmemBytes = 1024 + KTile::kBytes + VTile::kBytes + 2 * QTile::kBytes +
                                    2 * DoTile::kBytes + DsTile::kBytes + kRowStatsBytes;
};

} // namespace attnjit

// Compile-time shape of the warp-specialized Hopper backward: the wgmma dK/dV kernel's tiles,
// computed by BLOCK_N / 64 warpgroups, plus one more warpgroup that moves data (TMA loads of K,
// V, Q and dO; the row statistics; TMA reduce-adds of dQ) and hands most of its registers to
// the others.
#pragma once

#include <attnjit/bwd_wgmma_traits.cuh>
#include <attnjit/tma.cuh>

namespace attnjit {

template <class T_, int HEAD_DIM_QK, int HEAD_DIM_V, int BLOCK_N, bool CAUSAL, bool DETERMINISTIC,
          int STAGES>
struct BwdWsTraits : BwdWgmmaTraits<T_, HEAD_DIM_QK, HEAD_DIM_V, BLOCK_N, CAUSAL, DETERMINISTIC> {
  using Base = BwdWgmmaTraits<T_, HEAD_DIM_QK, HEAD_DIM_V, BLOCK_N, CAUSAL, DETERMINISTIC>;
  // Base::kThreads (the computing warpgroups) is what the named barrier counts.
  static constexpr int kLaunchThreads = Base::kThreads + 128;
  static constexpr int kStages = STAGES; // slots of Q, dO and row statistics

  // dS^T takes two buffers (step parity), so one barrier per step is enough: a step's dS^T
  // goes to the buffer whose readers (dQ two steps back) all passed the previous barrier.
  // Each warpgroup's dQ (64 rows, kDqCols fp32) waits in shared memory for its reduce-add.
  // Then the barriers: K/V full, per slot Q/dO full and empty, per warpgroup dQ full and empty.
  static constexpr int kDqBytes =
      Base::kAccumulateDq ? Base::kWarpgroups * 64 * Base::kDqCols * 4 : 0;
  static constexpr int kBarrierBytes = (1 + 2 * kStages + 2 * Base::kWarpgroups) * 8;
  static constexpr int kSmemBytes =
      1024 + Base::KTile::kBytes + Base::VTile::kBytes +
      kStages * (Base::QTile::kBytes + Base::DoTile::kBytes) + 2 * Base::DsTile::kBytes + kDqBytes +
      kStages * 2 * Base::kBlockM * 4 + (kBarrierBytes + 127) / 128 * 128;

  // The loader spills 20 B at d128 with 24 registers; 32 would leave the computing warpgroups
  // 232 instead of 240, and measured slower (docs/PERF.md, session 7: 500 vs 508 TFLOP/s).
  using Registers = WsRegisters<Base::kThreads, kSmemBytes, 24>;

  static_assert(Base::kWarpgroups >= 1 && Base::kWarpgroups <= 3,
                "one to three computing warpgroups");
  static_assert(BLOCK_N <= 256, "a TMA box spans at most 256 rows");
};

} // namespace attnjit

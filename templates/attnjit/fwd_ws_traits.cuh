// Compile-time shape of the warp-specialized Hopper forward: the wgmma forward's tiles, computed
// by BLOCK_M / 64 warpgroups, plus one more warpgroup that only loads (TMA, one thread) and
// hands most of its registers to the others.
#pragma once

#include <attnjit/fwd_wgmma_traits.cuh>

namespace attnjit {

template <class T_, int HEAD_DIM_QK, int HEAD_DIM_V, int BLOCK_M, int BLOCK_N, int STAGES,
          bool CAUSAL>
struct FwdWsTraits : FwdWgmmaTraits<T_, HEAD_DIM_QK, HEAD_DIM_V, BLOCK_M, BLOCK_N, STAGES, CAUSAL> {
  using Base = FwdWgmmaTraits<T_, HEAD_DIM_QK, HEAD_DIM_V, BLOCK_M, BLOCK_N, STAGES, CAUSAL>;
  // Base::kThreads (the computing warpgroups) is what the softmax and epilogue see.
  static constexpr int kComputeWarpgroups = BLOCK_M / 64;
  static constexpr int kLaunchThreads = Base::kThreads + 128;

  // Barriers after the tiles: Q full, then per slot K full, V full, K empty, V empty.
  static constexpr int kBarrierBytes = (1 + 4 * STAGES) * 8;
  static constexpr int kSmemBytes = Base::kSmemBytes + (kBarrierBytes + 127) / 128 * 128;

  // Two CTAs per SM when a single computing warpgroup leaves room for a second CTA's tiles
  // (227 KB per SM, 1 KB of it reserved per CTA).
  static constexpr int kCtasPerSm =
      kComputeWarpgroups == 1 && 2 * (kSmemBytes + 1024) <= 233472 ? 2 : 1;
  // Registers at entry (__launch_bounds__), then moved: the loader keeps 24, the computing
  // warpgroups share the rest, at most 240 each (setmaxnreg: multiples of 8, 24..256).
  static constexpr int kProducerRegs = 24;
  static constexpr int kEntryRegs = 65536 / kCtasPerSm / kLaunchThreads / 8 * 8 > 255
                                        ? 255
                                        : 65536 / kCtasPerSm / kLaunchThreads / 8 * 8;
  static constexpr int kComputeRegsFit =
      (65536 / kCtasPerSm - 128 * kProducerRegs) / Base::kThreads / 8 * 8;
  static constexpr int kComputeRegs = kComputeRegsFit > 240 ? 240 : kComputeRegsFit;
  static constexpr bool kMoveRegisters = kEntryRegs < kComputeRegs;

  static_assert(kComputeWarpgroups >= 1 && kComputeWarpgroups <= 3,
                "one to three computing warpgroups");
  static_assert(BLOCK_M <= 256 && BLOCK_N <= 256, "a TMA box spans at most 256 rows");
};

} // namespace attnjit

// Compile-time shape of the warp-specialized Hopper forward: the wgmma forward's tiles, computed
// by BLOCK_M / 64 warpgroups, plus one more warpgroup that only loads (TMA, one thread) and
// hands most of its registers to the others.
#pragma once

#include <attnjit/fwd_wgmma_traits.cuh>
#include <attnjit/tma.cuh>

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

  using Registers = WsRegisters<Base::kThreads, kSmemBytes>;

  static_assert(kComputeWarpgroups >= 1 && kComputeWarpgroups <= 3,
                "one to three computing warpgroups");
  static_assert(BLOCK_M <= 256 && BLOCK_N <= 256, "a TMA box spans at most 256 rows");
};

} // namespace attnjit

// One warpgroup's share of the Hopper forward: 64 query rows whose S, P and O live in registers,
// and the per-key-block work on them. Both wgmma forward kernels (all warpgroups loading with
// cp.async; one warpgroup loading with TMA) drive it the same way, FlashAttention-3's
// intra-warpgroup overlap:
//   issue_s(n); issue_pv(n - 1); wgmma_wait<1>  -> S_n is ready, P_{n-1} V_{n-1} may still run
//   softmax_step(n)                             -> overlaps that MMA
//   wgmma_wait<0>; next_p(rescale)              -> O rescaled, P_n packed for the next step
#pragma once

#include <attnjit/fwd_params.h>
#include <attnjit/fwd_softmax.cuh>
#include <attnjit/wgmma.cuh>

namespace attnjit {

template <class K> struct FwdWgmmaRows {
  using T = typename K::T;
  static constexpr int NT = K::kNTiles, DT = K::kDTiles;

  float o[1][DT][4];     // (16, Dv) per warp, MMA C layout
  float s[1][NT][4];     // S_n, then P_n in fp32
  u32 pf[K::kPSteps][4]; // P_{n-1}, A fragments of P V
  OnlineSoftmax<1> softmax;
  u32 sQ_wg, sK, sV;     // this warpgroup's Q rows; the K and V rings (slot n % STAGES)
  int lane, row_in_warp; // row_in_warp: first of this warp's 16 rows within the block

  // warp: this warp's index among the computing warps (4 per warpgroup).
  __device__ __forceinline__ FwdWgmmaRows(u32 sQ, u32 sK_, u32 sV_, int warp, int lane_)
      : sQ_wg(sQ + (warp / 4) * 64 * 128), sK(sK_), sV(sV_), lane(lane_), row_in_warp(warp * 16) {
#pragma unroll
    for (int dt = 0; dt < DT; ++dt)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        o[0][dt][e] = 0.f;
    softmax.init();
  }

  // K-major operands step 32 bytes per k16 within a 128-byte row and a whole group every 4
  // steps; V (read MN-major) steps 16 rows (2048 bytes).
  __device__ __forceinline__ u64 q_desc(int kk) const {
    return wgmma_desc(sQ_wg + (kk / 4) * K::QTile::kGroupBytes + (kk % 4) * 32, 16, 1024);
  }
  __device__ __forceinline__ u64 k_desc(int n, int kk) const {
    return wgmma_desc(sK + (n % K::kStages) * K::KTile::kBytes + (kk / 4) * K::KTile::kGroupBytes +
                          (kk % 4) * 32,
                      16, 1024);
  }
  __device__ __forceinline__ u64 v_desc(int n, int kp) const {
    return wgmma_desc(sV + (n % K::kStages) * K::VTile::kBytes + kp * 16 * 128,
                      K::VTile::kGroupBytes, 1024);
  }

  __device__ __forceinline__ void issue_s(int n) {
#pragma unroll
    for (int kk = 0; kk < K::kKSteps; ++kk)
      Wgmma<T, K::kBlockN>::template ss<0, 0>(s[0], q_desc(kk), k_desc(n, kk), kk > 0);
    wgmma_commit();
  }
  __device__ __forceinline__ void issue_pv(int n) {
#pragma unroll
    for (int kp = 0; kp < K::kPSteps; ++kp)
      Wgmma<T, K::kDv>::template rs<1>(o[0], pf[kp], v_desc(n, kp), true);
    wgmma_commit();
  }

  // Masks S_n (keys past seqlen_k; above the diagonal when causal), turns it into P_n and
  // returns each row's rescale factor for O. Only edge blocks pay for the mask.
  __device__ __forceinline__ void softmax_step(const FwdParams& p, int n, int m0, int diag,
                                               float (&rescale)[1][2]) {
    const int n0 = n * K::kBlockN;
    const bool edge = n0 + K::kBlockN > p.seqlen_k ||
                      (K::kCausal && n0 + K::kBlockN - 1 > m0 + row_in_warp + diag);
    if (edge) {
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int row = m0 + row_in_warp + lane / 4 + (e / 2) * 8;
          const int key = n0 + nt * 8 + (lane % 4) * 2 + (e % 2);
          if (key >= p.seqlen_k || (K::kCausal && key > row + diag)) s[0][nt][e] = neg_inf();
        }
    }
    softmax.update(s, p.softmax_scale_log2, rescale);
  }

  __device__ __forceinline__ void pack_p() {
#pragma unroll
    for (int kp = 0; kp < K::kPSteps; ++kp) {
      pf[kp][0] = Dtype<T>::pack(s[0][2 * kp][0], s[0][2 * kp][1]);
      pf[kp][1] = Dtype<T>::pack(s[0][2 * kp][2], s[0][2 * kp][3]);
      pf[kp][2] = Dtype<T>::pack(s[0][2 * kp + 1][0], s[0][2 * kp + 1][1]);
      pf[kp][3] = Dtype<T>::pack(s[0][2 * kp + 1][2], s[0][2 * kp + 1][3]);
    }
  }

  // After wgmma_wait<0>: the accumulators and P fragments the finished MMAs used stay in their
  // registers (nothing reads them early or reuses them while the MMA was in flight).
  __device__ __forceinline__ void hold_registers() {
#pragma unroll
    for (int dt = 0; dt < DT; ++dt)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        keep_in_register(o[0][dt][e]);
#pragma unroll
    for (int kp = 0; kp < K::kPSteps; ++kp)
#pragma unroll
      for (int i = 0; i < 4; ++i)
        keep_in_register(pf[kp][i]);
  }

  // P_{n-1} V_{n-1} has finished: O moves to S_n's row max and P_n becomes the next A operand.
  __device__ __forceinline__ void next_p(const float (&rescale)[1][2]) {
    hold_registers();
#pragma unroll
    for (int dt = 0; dt < DT; ++dt)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        o[0][dt][e] *= rescale[0][e / 2];
    pack_p();
  }
};

} // namespace attnjit

// One warpgroup's share of the Hopper backward: 64 keys whose dK and dV live in registers, and
// the work of one 64-query step on them. Both wgmma dK/dV kernels (all warps loading with
// cp.async; one warpgroup loading with TMA) drive it the same way:
//   S^T = K Q^T and dP^T = V dO^T from shared memory, or with K and V from registers
//   (kKvInRegisters; dP^T still in flight while P^T is made),
//   dV += P^T dO with P^T as the register A operand,
//   dQ (64 queries x this warpgroup's kDqCols columns) = dS K over all BLOCK_N keys, reading
//   every warpgroup's dS^T from shared memory (M-major) once Barrier says it is all there (or,
//   kDqOverOwnKeys, all columns over this warpgroup's 64 keys, after its own barrier), then
//   handed to the kernel's dQ sink, which adds it to the fp32 workspace,
//   dK += dS^T Q, this warpgroup's rows of the same dS^T as the A operand (K-major); with a
//   deterministic dQ (no dS^T in shared memory) from registers, like P^T.
#pragma once

#include <attnjit/bwd_block.cuh>
#include <attnjit/bwd_params.h>
#include <attnjit/wgmma.cuh>

namespace attnjit {

template <class K> struct BwdWgmmaKeys {
  using T = typename K::T;
  using KTile = typename K::KTile;
  using VTile = typename K::VTile;
  using QTile = typename K::QTile;
  using DoTile = typename K::DoTile;
  using DsTile = typename K::DsTile;
  static constexpr int BM = K::kBlockM, MT8 = BM / 8, KQ = BM / 16;

  float dk[1][K::kDqk / 8][4]; // (16 keys, Dqk) per warp, MMA C layout; scaled when written
  float dv[1][K::kDv / 8][4];
  // With kKvInRegisters: this warp's 16 keys of K and V as A fragments, one per k16 step.
  static constexpr int kKvFragK = K::kKvInRegisters ? K::kDqk / 16 : 1;
  static constexpr int kKvFragV = K::kKvInRegisters ? K::kDv / 16 : 1;
  u32 k_frag[kKvFragK][4], v_frag[kKvFragV][4];
  u32 sK, sK_wg, sV_wg; // K (all keys, for dQ); this warpgroup's 64 keys of K and V
  int warp, wg, lane;
  int key0; // this warp's first key within the block

  // warp: this warp's index among the computing warps (4 per warpgroup).
  __device__ __forceinline__ BwdWgmmaKeys(u32 sK_, u32 sV, int warp_, int lane_)
      : sK(sK_), sK_wg(sK_ + (warp_ / 4) * 64 * 128), sV_wg(sV + (warp_ / 4) * 64 * 128),
        warp(warp_), wg(warp_ / 4), lane(lane_), key0(warp_ * 16) {
#pragma unroll
    for (int dt = 0; dt < K::kDqk / 8; ++dt)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        dk[0][dt][e] = 0.f;
#pragma unroll
    for (int dt = 0; dt < K::kDv / 8; ++dt)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        dv[0][dt][e] = 0.f;
  }

  // Once K and V are in shared memory, before the first step: K and V's A fragments (lanes 0-15
  // address rows 0-15 of chunk 2kk, lanes 16-31 the same rows of chunk 2kk + 1, which ldmatrix
  // hands back as a0..a3 of the m16n8k16 layout).
  __device__ __forceinline__ void load_kv_fragments() {
    if constexpr (K::kKvInRegisters) {
      const int row = (warp % 4) * 16 + (lane & 15), half = lane >> 4;
#pragma unroll
      for (int kk = 0; kk < K::kDqk / 16; ++kk)
        ldmatrix_x4(k_frag[kk], sK_wg + KTile::offset(row, 2 * kk + half));
#pragma unroll
      for (int kk = 0; kk < K::kDv / 16; ++kk)
        ldmatrix_x4(v_frag[kk], sV_wg + VTile::offset(row, 2 * kk + half));
    }
  }

  // K-major operands (64 keys of K or V as A; Q or dO as B of S^T, dP^T) step 32 bytes per k16
  // and a group every 4; N-major ones (Q, dO as B of dK, dV; K as B of dQ; dS^T as dQ's
  // M-major A) step 16 rows (2048 bytes).
  static __device__ __forceinline__ u64 kmajor(u32 tile, int group_bytes, int kk) {
    return wgmma_desc(tile + (kk / 4) * group_bytes + (kk % 4) * 32, 16, 1024);
  }
  static __device__ __forceinline__ u64 nmajor(u32 tile, int group_bytes, int kk) {
    return wgmma_desc(tile + kk * 16 * 128, group_bytes, 1024);
  }

  // One step over queries [m0, m0 + 64): sQ_i and sDo_i hold their Q and dO rows, lse and
  // dsum their LSE and D, sDs takes dS^T. Calls dq_sink(dq) with this warpgroup's dQ (unless
  // deterministic), then operands_read() once no MMA reads sQ_i, sDo_i, lse or dsum any more
  // (the warp-specialized kernel frees the slot there); returns with every MMA done.
  template <class Barrier, class OperandsRead, class DqSink>
  __device__ __forceinline__ void step(const BwdParams& p, u32 sQ_i, u32 sDo_i, const float* lse,
                                       const float* dsum, u32 sDs, int n0, int m0, int diag,
                                       OperandsRead operands_read, DqSink dq_sink) {
    float s[MT8][4];  // S^T (64 keys of this warpgroup, 64 queries), then P^T
    float dp[MT8][4]; // dP^T, then dS^T
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < K::kDqk / 16; ++kk)
      if constexpr (K::kKvInRegisters)
        Wgmma<T, BM>::template rs<0>(s, k_frag[kk], kmajor(sQ_i, QTile::kGroupBytes, kk), kk > 0);
      else
        Wgmma<T, BM>::template ss<0, 0>(s, kmajor(sK_wg, KTile::kGroupBytes, kk),
                                        kmajor(sQ_i, QTile::kGroupBytes, kk), kk > 0);
    wgmma_commit();
#pragma unroll
    for (int kk = 0; kk < K::kDv / 16; ++kk)
      if constexpr (K::kKvInRegisters)
        Wgmma<T, BM>::template rs<0>(dp, v_frag[kk], kmajor(sDo_i, DoTile::kGroupBytes, kk),
                                     kk > 0);
      else
        Wgmma<T, BM>::template ss<0, 0>(dp, kmajor(sV_wg, VTile::kGroupBytes, kk),
                                        kmajor(sDo_i, DoTile::kGroupBytes, kk), kk > 0);
    wgmma_commit();
    wgmma_wait<1>(); // S^T done; dP^T may still run

    const bool edge = n0 + K::kBlockN > p.seqlen_k || (K::kCausal && n0 + key0 + 15 > m0 + diag);
    probabilities_t<K::kCausal>(s, p, lse, n0 + key0, m0, diag, edge, lane);
    wgmma_wait<0>(); // dP^T done
#pragma unroll
    for (int mt = 0; mt < MT8; ++mt)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        dp[mt][e] = s[mt][e] * (dp[mt][e] - dsum[mt * 8 + (lane % 4) * 2 + (e % 2)]);
    // Packed once dS^T is made, so that P^T's bf16 copy is not live next to dP^T and P^T.
    u32 p_frag[KQ][4], ds_frag[KQ][4]; // A fragments, 16 queries per k-step
    pack_a(p_frag, s);
    pack_a(ds_frag, dp);

    wgmma_fence();
#pragma unroll
    for (int kq = 0; kq < KQ; ++kq) // dV += P^T dO
      Wgmma<T, K::kDv>::template rs<1>(dv[0], p_frag[kq], nmajor(sDo_i, DoTile::kGroupBytes, kq),
                                       true);
    if constexpr (K::kAccumulateDq) {
      // dK reads dS^T from shared memory like dQ does, after dQ, so dQ reaches its sink while
      // dK still runs, and no A fragments stay live next to dQ's accumulators. Measured against
      // dK from registers issued with dV: d128 470 vs 461 TFLOP/s (487 vs 468 with 3 stages).
      wgmma_commit();
      store_ds_t(sDs, ds_frag);
      fence_proxy_async();
      if constexpr (K::kDqOverOwnKeys)
        named_barrier_sync(2 + wg, 128); // this warpgroup's dS^T
      else
        Barrier::sync(); // all of dS^T
      wgmma_wait<0>();   // dV done: P^T's fragments are free
      float dq[K::kDqCols / 8][4];
      const u32 sDs_wg = sDs + wg * 64 * 128; // this warpgroup's 64 keys of dS^T
      // dQ's operands: all keys and this warpgroup's columns, or its own keys and all columns.
      constexpr int kDqKeys = K::kDqOverOwnKeys ? 64 : K::kBlockN;
      const u32 sDs_dq = K::kDqOverOwnKeys ? sDs_wg : sDs;
      const u32 sK_dq =
          K::kDqOverOwnKeys ? sK_wg : sK + (wg * K::kDqCols / 64) * KTile::kGroupBytes;
      wgmma_fence();
#pragma unroll
      for (int kn = 0; kn < kDqKeys / 16; ++kn)
        Wgmma<T, K::kDqCols>::template ss<1, 1>(dq, nmajor(sDs_dq, DsTile::kGroupBytes, kn),
                                                nmajor(sK_dq, KTile::kGroupBytes, kn), kn > 0);
      wgmma_commit();
#pragma unroll
      for (int kq = 0; kq < KQ; ++kq) // dK += dS^T Q (scaled when written)
        Wgmma<T, K::kDqk>::template ss<0, 1>(dk[0], kmajor(sDs_wg, DsTile::kGroupBytes, kq),
                                             nmajor(sQ_i, QTile::kGroupBytes, kq), true);
      wgmma_commit();
      wgmma_wait<1>(); // dQ done; dK runs on while dQ goes to its sink
      dq_sink(dq);
      wgmma_wait<0>();
      operands_read();
    } else {
#pragma unroll
      for (int kq = 0; kq < KQ; ++kq) // dK += dS^T Q (scaled when written)
        Wgmma<T, K::kDqk>::template rs<1>(dk[0], ds_frag[kq], nmajor(sQ_i, QTile::kGroupBytes, kq),
                                          true);
      wgmma_commit();
      wgmma_wait<0>();
      operands_read();
      // The fragments the MMAs read stay put until they are done.
#pragma unroll
      for (int kq = 0; kq < KQ; ++kq)
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          keep_in_register(p_frag[kq][i]);
          keep_in_register(ds_frag[kq][i]);
        }
    }
    hold_accumulators();
  }

  // fp32 C fragments (n8 tiles of queries) to bf16/fp16 A fragments, 16 queries per k-step.
  static __device__ __forceinline__ void pack_a(u32 (&a)[KQ][4], const float (&c)[MT8][4]) {
#pragma unroll
    for (int kq = 0; kq < KQ; ++kq) {
      a[kq][0] = Dtype<T>::pack(c[2 * kq][0], c[2 * kq][1]);
      a[kq][1] = Dtype<T>::pack(c[2 * kq][2], c[2 * kq][3]);
      a[kq][2] = Dtype<T>::pack(c[2 * kq + 1][0], c[2 * kq + 1][1]);
      a[kq][3] = Dtype<T>::pack(c[2 * kq + 1][2], c[2 * kq + 1][3]);
    }
  }

  // This thread's dS^T: rows key0 + lane/4 (+8), query pairs. Chunk c of row r sits at chunk
  // c ^ (r % 8), and r % 8 = lane / 4: one base and an XOR per store. The lane is read afresh
  // (volatile) so that the compiler rebuilds the eight addresses here instead of keeping them
  // live across the main loop, where they (and dQ's) spilled 112 bytes a thread.
  __device__ __forceinline__ void store_ds_t(u32 sDs, const u32 (&ds_frag)[KQ][4]) const {
    static_assert(BM == 64, "dS^T rows are one 64-column group");
    const int l = lane_now(), r = l / 4;
    const u32 base = sDs + (key0 + r) * 128 + (l % 4) * 4, sw = r << 4;
#pragma unroll
    for (int kq = 0; kq < KQ; ++kq)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const u32 chunk = kq * 2 + i / 2;
        asm volatile("st.shared.u32 [%0], %1;" ::"r"((base | (sw ^ (chunk << 4))) + (i % 2) * 1024),
                     "r"(ds_frag[kq][i]));
      }
  }

  // dQ straight from registers to the fp32 workspace, one red.global.add per pair.
  __device__ __forceinline__ void add_dq(const BwdParams& p, const float (&dq)[K::kDqCols / 8][4],
                                         int b, int h, int m0) const {
    float* dq_out = p.dq_accum + ((static_cast<i64>(b) * p.num_heads + h) * p.seqlen_q) * K::kDqk;
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
      const int row = m0 + (warp % 4) * 16 + lane / 4 + hf * 8;
      if (row >= p.seqlen_q) continue;
#pragma unroll
      for (int dt = 0; dt < K::kDqCols / 8; ++dt)
        red_add2(dq_out + static_cast<i64>(row) * K::kDqk + dq_col0() + dt * 8 + (lane % 4) * 2,
                 dq[dt][2 * hf], dq[dt][2 * hf + 1]);
    }
  }

  // This warpgroup's first dQ column: its slice, or 0 when it sums over its own keys.
  __device__ __forceinline__ int dq_col0() const {
    return K::kDqOverOwnKeys ? 0 : wg * K::kDqCols;
  }

  // dQ to shared memory in MMA fragment order, which the fp32 workspace keeps
  // (flash_bwd_dq_tiled_kernel reads it): float4 (dt * 128 + thread) holds this thread's
  // dq[dt], so each store of a warp is 512 contiguous bytes, free of bank conflicts. (A
  // row-major tile for a 2-d TMA reduce cost 5%: its 128-byte swizzle still left 2-way
  // conflicts for 8-byte stores.)
  __device__ __forceinline__ void store_dq(u32 sDq_wg, const float (&dq)[K::kDqCols / 8][4]) const {
    const u32 base = sDq_wg + ((warp % 4) * 32 + lane) * 16;
#pragma unroll
    for (int dt = 0; dt < K::kDqCols / 8; ++dt)
      asm volatile("st.shared.v4.f32 [%0], {%1, %2, %3, %4};" ::"r"(base + dt * 128 * 16),
                   "f"(dq[dt][0]), "f"(dq[dt][1]), "f"(dq[dt][2]), "f"(dq[dt][3]));
  }

  // %laneid through volatile asm: a value the compiler cannot hoist out of a loop.
  static __device__ __forceinline__ int lane_now() {
    int l;
    asm volatile("mov.u32 %0, %%laneid;" : "=r"(l));
    return l;
  }

  __device__ __forceinline__ void hold_accumulators() {
#pragma unroll
    for (int dt = 0; dt < K::kDqk / 8; ++dt)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        keep_in_register(dk[0][dt][e]);
#pragma unroll
    for (int dt = 0; dt < K::kDv / 8; ++dt)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        keep_in_register(dv[0][dt][e]);
  }
};

} // namespace attnjit

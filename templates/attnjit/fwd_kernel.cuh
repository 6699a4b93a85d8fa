// FlashAttention-2-style forward: one CTA per (BLOCK_M query rows, batch, head). Q is staged in
// shared memory once; K/V tiles stream through a STAGES-deep cp.async ring; each warp owns
// kWarpRows query rows end to end (S = Q K^T, online softmax, O += P V) in registers.
#pragma once

#include <attnjit/fwd_block.cuh>
#include <attnjit/fwd_epilogue.cuh>
#include <attnjit/fwd_params.h>
#include <attnjit/fwd_softmax.cuh>
#include <attnjit/fwd_traits.cuh>

namespace attnjit {

template <class K>
__global__ void __launch_bounds__(K::kThreads)
    flash_fwd_kernel(const __grid_constant__ FwdParams p) {
  using T = typename K::T;
  using QTile = typename K::QTile;
  using KTile = typename K::KTile;
  using VTile = typename K::VTile;
  constexpr int MT = K::kMTiles, NT = K::kNTiles, DT = K::kDTiles;

  extern __shared__ __align__(128) unsigned char smem[];
  const u32 sQ = smem_u32(smem);                  // (BLOCK_M, Dqk), later O (BLOCK_M, Dv)
  const u32 sK = sQ + K::kQOBytes;                // STAGES x (BLOCK_N, Dqk)
  const u32 sV = sK + K::kStages * KTile::kBytes; // STAGES x (BLOCK_N, Dv)

  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const FwdBlock<K::kBlockM, K::kBlockN, K::kCausal> block(p);
  const int b = block.b, h = block.h, m0 = block.m0, diag = block.diag, n_blocks = block.n_blocks;
  const unsigned short *q = block.q, *k = block.k, *v = block.v;

  auto load_kv = [&](int n_block) {
    const int slot = n_block % K::kStages, n0 = n_block * K::kBlockN;
    KTile::template load_async<K::kThreads>(sK + slot * KTile::kBytes, k + n0 * p.k_seq_stride,
                                            p.k_seq_stride, p.seqlen_k - n0, tid);
    VTile::template load_async<K::kThreads>(sV + slot * VTile::kBytes, v + n0 * p.v_seq_stride,
                                            p.v_seq_stride, p.seqlen_k - n0, tid);
  };
  // Prologue: Q and the first STAGES-1 K/V tiles, one commit group per tile (Q rides in the
  // first) so that wait_group<STAGES-2> below always means "tile n has landed".
  QTile::template load_async<K::kThreads>(sQ, q, p.q_seq_stride, p.seqlen_q - m0, tid);
#pragma unroll
  for (int s = 0; s < K::kStages - 1; ++s) {
    if (s < n_blocks) load_kv(s);
    cp_async_commit();
  }

  const int row_in_warp = warp * K::kWarpRows; // first of this warp's rows within the block
  u32 q_frag[K::kQInRegs ? MT : 1][K::kQInRegs ? K::kKSteps : 1][4];
  // Per-lane ldmatrix addresses: a row part and four swizzled column parts (SwizzledCols);
  // everything else is a compile-time offset, which keeps the address registers few.
  const SwizzledCols cols_qv((lane >> 4) ^ (lane & 7));
  const SwizzledCols cols_k(((lane >> 3) & 1) ^ (lane & 7));
  const u32 q_row = sQ + QTile::row_offset(row_in_warp + (lane & 15));
  const u32 k_row = KTile::row_offset((lane & 7) + ((lane >> 4) << 3));
  const u32 v_row = VTile::row_offset(lane & 15);
  auto load_q_frag = [&](u32(&f)[4], int mt, int kk) {
    ldmatrix_x4(f, q_row + QTile::row_offset(mt * 16) + cols_qv(kk));
  };
  if constexpr (K::kQInRegs) {
    cp_async_wait<K::kStages - 2>();
    __syncthreads();
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int kk = 0; kk < K::kKSteps; ++kk)
        load_q_frag(q_frag[mt][kk], mt, kk);
  }

  float o[MT][DT][4] = {}; // (kWarpRows, D) fp32 accumulator, MMA C layout
  OnlineSoftmax<MT> softmax;
  softmax.init();

  for (int n_block = 0; n_block < n_blocks; ++n_block) {
    cp_async_wait<K::kStages - 2>();
    __syncthreads(); // tile n_block visible to all; everyone is done with the slot refilled next
    if (n_block + K::kStages - 1 < n_blocks) load_kv(n_block + K::kStages - 1);
    cp_async_commit();
    const u32 sK_n = sK + (n_block % K::kStages) * KTile::kBytes;
    const u32 sV_n = sV + (n_block % K::kStages) * VTile::kBytes;

    // S = Q K^T: (kWarpRows, BLOCK_N) fp32
    float s[MT][NT][4] = {};
#pragma unroll
    for (int kk = 0; kk < K::kKSteps; ++kk) {
      u32 qf[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        if constexpr (K::kQInRegs) {
#pragma unroll
          for (int i = 0; i < 4; ++i)
            qf[mt][i] = q_frag[mt][kk][i];
        } else {
          load_q_frag(qf[mt], mt, kk);
        }
      }
#pragma unroll
      for (int nt = 0; nt < NT; nt += 2) {
        u32 kf[4]; // b-fragments of key tiles nt and nt+1
        ldmatrix_x4(kf, sK_n + k_row + KTile::row_offset(nt * 8) + cols_k(kk));
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          mma_16816<T>(s[mt][nt], qf[mt], kf[0], kf[1]);
          mma_16816<T>(s[mt][nt + 1], qf[mt], kf[2], kf[3]);
        }
      }
    }

    // Mask keys past seqlen_k and, when causal, above the diagonal: only edge blocks pay for it.
    const int n0 = n_block * K::kBlockN;
    const bool edge = n0 + K::kBlockN > p.seqlen_k ||
                      (K::kCausal && n0 + K::kBlockN - 1 > m0 + row_in_warp + diag);
    if (edge) {
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int row = m0 + row_in_warp + mt * 16 + lane / 4 + (e / 2) * 8;
            const int key = n0 + nt * 8 + (lane % 4) * 2 + (e % 2);
            if (key >= p.seqlen_k || (K::kCausal && key > row + diag)) s[mt][nt][e] = neg_inf();
          }
    }

    float rescale[MT][2];
    softmax.update(s, p.softmax_scale_log2, rescale);
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int dt = 0; dt < DT; ++dt)
#pragma unroll
        for (int e = 0; e < 4; ++e)
          o[mt][dt][e] *= rescale[mt][e / 2];

          // O += P V: P re-enters the tensor cores straight from the S accumulators, as A
          // fragments.
#pragma unroll
    for (int kp = 0; kp < K::kPSteps; ++kp) {
      u32 pf[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        pf[mt][0] = Dtype<T>::pack(s[mt][2 * kp][0], s[mt][2 * kp][1]);
        pf[mt][1] = Dtype<T>::pack(s[mt][2 * kp][2], s[mt][2 * kp][3]);
        pf[mt][2] = Dtype<T>::pack(s[mt][2 * kp + 1][0], s[mt][2 * kp + 1][1]);
        pf[mt][3] = Dtype<T>::pack(s[mt][2 * kp + 1][2], s[mt][2 * kp + 1][3]);
      }
#pragma unroll
      for (int dt = 0; dt < DT; dt += 2) {
        u32 vf[4]; // b-fragments of head-dim tiles dt and dt+1, transposed on load
        ldmatrix_x4_trans(vf, sV_n + v_row + VTile::row_offset(kp * 16) + cols_qv(dt / 2));
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          mma_16816<T>(o[mt][dt], pf[mt], vf[0], vf[1]);
          mma_16816<T>(o[mt][dt + 1], pf[mt], vf[2], vf[3]);
        }
      }
    }
  }

  softmax.finish();
  cp_async_wait<0>();
  __syncthreads(); // every warp is done with sQ before it stages O
  write_output<K>(p, o, softmax, sQ, b, h, m0, row_in_warp, tid);
}

} // namespace attnjit

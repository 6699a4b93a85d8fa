// The wide-Dv forward (head_dim_v > 256; absorbed MLA: 576/512, V = K's first 512 columns). Same
// grid, parameters and K/V ring as flash_fwd_kernel, but O (BLOCK_M x Dv fp32) is spread over the
// warps by columns (fwd_wide_traits.cuh), so S = Q K^T is split among the warps by keys and each
// block takes three barriers:
//   1. the K (and V) tile has landed;        S slice = Q K^T, masked; partial row maxima out
//   2. partial maxima visible;               P slice = exp(S - max) out, with the rescale factors
//   3. P and rescale factors visible;        O slice = O * rescale + P V
// Why not compute S redundantly in each column-slice warp instead: with 4 slices that is 4 x 576
// + 512 MMA columns per key for 1088 useful (39%). Splitting costs shared-memory reads instead:
// with 64 x 64 tiles and 8 warps, 573 KB a block (S: 16 x 32 warp tiles re-read Q; PV: every warp
// reads all of P) for 2176 MMAs, 263 B per MMA against the d128 kernel's 159, which puts ldmatrix
// and mma.sync about even on an H100; plus two more barriers a block, with one CTA per SM.
#pragma once

#include <attnjit/fwd_block.cuh>
#include <attnjit/fwd_params.h>
#include <attnjit/fwd_wide_epilogue.cuh>
#include <attnjit/fwd_wide_softmax.cuh>
#include <attnjit/fwd_wide_traits.cuh>

namespace attnjit {

template <class K>
__global__ void __launch_bounds__(K::kThreads, 1)
    flash_fwd_wide_kernel(const __grid_constant__ FwdParams p) {
  using T = typename K::T;
  using QTile = typename K::QTile;
  using KTile = typename K::KTile;
  using VTile = typename K::VTile;
  using PTile = typename K::PTile;
  constexpr int MT = K::kMTiles, DT = K::kDTiles, NT = K::kSTiles;

  extern __shared__ __align__(128) unsigned char smem[];
  const u32 sQ = smem_u32(smem);                     // (BLOCK_M, Dqk), later O (BLOCK_M, Dv)
  const u32 sK = sQ + K::kKOffset;                   // STAGES x (BLOCK_N, Dqk)
  const u32 sV = K::kVFromK ? sK : sQ + K::kVOffset; // STAGES x (BLOCK_N, Dv), or K's tiles
  const u32 sP = sQ + K::kPOffset;                   // (BLOCK_M, BLOCK_N) in T
  const WideRowStats<K::kSplit, K::kBlockM> stats(reinterpret_cast<float*>(smem + K::kStatsOffset));

  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const FwdBlock<K::kBlockM, K::kBlockN, K::kCausal> block(p);
  const int b = block.b, h = block.h, m0 = block.m0, diag = block.diag, n_blocks = block.n_blocks;
  const unsigned short *q = block.q, *k = block.k, *v = block.v;

  auto load_kv = [&](int n_block) {
    const int slot = n_block % K::kStages, n0 = n_block * K::kBlockN;
    KTile::template load_async<K::kThreads>(sK + slot * KTile::kBytes, k + n0 * p.k_seq_stride,
                                            p.k_seq_stride, p.seqlen_k - n0, tid);
    if constexpr (!K::kVFromK)
      VTile::template load_async<K::kThreads>(sV + slot * VTile::kBytes, v + n0 * p.v_seq_stride,
                                              p.v_seq_stride, p.seqlen_k - n0, tid);
  };
  // Prologue as in flash_fwd_kernel: one commit group per tile, Q riding in the first.
  QTile::template load_async<K::kThreads>(sQ, q, p.q_seq_stride, p.seqlen_q - m0, tid);
#pragma unroll
  for (int s = 0; s < K::kStages - 1; ++s) {
    if (s < n_blocks) load_kv(s);
    cp_async_commit();
  }

  // This warp's S slice: rows s_row.. +16 of the block, keys s_key.. +kSplitKeys of each tile.
  const int s_part = warp % K::kSplit, s_row = warp / K::kSplit * 16;
  const int s_key = s_part * K::kSplitKeys;
  const int o_col = warp * K::kOCols; // and its O slice: all rows, columns o_col.. +kOCols
  // Per-lane ldmatrix addresses, as in flash_fwd_kernel; o_col is a multiple of 64 columns, so
  // it moves V's address by whole swizzle groups.
  const SwizzledCols cols_a((lane >> 4) ^ (lane & 7)); // A operands (Q, P) and V^T
  const SwizzledCols cols_k(((lane >> 3) & 1) ^ (lane & 7));
  const u32 q_row = sQ + QTile::row_offset(s_row + (lane & 15));
  const u32 k_row = KTile::row_offset(s_key + (lane & 7) + ((lane >> 4) << 3));
  const u32 p_row = sP + PTile::row_offset(lane & 15);
  const u32 v_row = VTile::row_offset(lane & 15) + (o_col / 64) * 128;

  float o[MT][DT][4] = {}; // (BLOCK_M, kOCols) fp32 accumulator, MMA C layout
  SplitSoftmax<K::kSplit, K::kBlockM> softmax;
  softmax.init();

  for (int n_block = 0; n_block < n_blocks; ++n_block) {
    cp_async_wait<K::kStages - 2>();
    __syncthreads(); // (1) tile n_block visible; last block's P, maxima and V reads are done
    if (n_block + K::kStages - 1 < n_blocks) load_kv(n_block + K::kStages - 1);
    cp_async_commit();
    const u32 sK_n = sK + (n_block % K::kStages) * KTile::kBytes;
    const u32 sV_n = sV + (n_block % K::kStages) * VTile::kBytes;

    float s[NT][4] = {}; // S slice = Q K^T: (16, kSplitKeys) fp32
#pragma unroll
    for (int kk = 0; kk < K::kKSteps; ++kk) {
      u32 qf[4];
      ldmatrix_x4(qf, q_row + cols_a(kk));
#pragma unroll
      for (int nt = 0; nt < NT; nt += 2) {
        u32 kf[4]; // b-fragments of key tiles nt and nt+1
        ldmatrix_x4(kf, sK_n + k_row + KTile::row_offset(nt * 8) + cols_k(kk));
        mma_16816<T>(s[nt], qf, kf[0], kf[1]);
        mma_16816<T>(s[nt + 1], qf, kf[2], kf[3]);
      }
    }
    // Mask keys past seqlen_k and, when causal, above the diagonal: only edge slices pay for it.
    const int n0 = n_block * K::kBlockN + s_key;
    if (n0 + K::kSplitKeys > p.seqlen_k ||
        (K::kCausal && n0 + K::kSplitKeys - 1 > m0 + s_row + diag)) {
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int row = m0 + s_row + lane / 4 + (e / 2) * 8;
          const int key = n0 + nt * 8 + (lane % 4) * 2 + (e % 2);
          if (key >= p.seqlen_k || (K::kCausal && key > row + diag)) s[nt][e] = neg_inf();
        }
    }
    softmax.share_max(s, stats, s_part, s_row, lane);
    __syncthreads(); // (2) partial maxima visible
    float rescale[2];
    softmax.update(s, stats, s_row, lane, p.softmax_scale_log2, rescale);
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int hf = 0; hf < 2; ++hf) {
        const int row = s_row + lane / 4 + hf * 8;
        const u32 packed = Dtype<T>::pack(s[nt][2 * hf], s[nt][2 * hf + 1]);
        const u32 addr = sP + PTile::offset(row, (s_key + nt * 8) / 8) + (lane % 4) * 4;
        asm volatile("st.shared.u32 [%0], %1;" ::"r"(addr), "r"(packed));
      }
    if (s_part == 0 && lane % 4 == 0) // every S warp of the row tile has the same factors
#pragma unroll
      for (int hf = 0; hf < 2; ++hf)
        stats.rescale[s_row + lane / 4 + hf * 8] = rescale[hf];
    __syncthreads(); // (3) P and the rescale factors visible

#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int hf = 0; hf < 2; ++hf) {
        const float r = stats.rescale[mt * 16 + lane / 4 + hf * 8];
#pragma unroll
        for (int dt = 0; dt < DT; ++dt)
          o[mt][dt][2 * hf] *= r, o[mt][dt][2 * hf + 1] *= r;
      }
#pragma unroll
    for (int kp = 0; kp < K::kPSteps; ++kp) {
      u32 pf[MT][4]; // P of every row, keys kp*16.. +16, as A fragments
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
        ldmatrix_x4(pf[mt], p_row + PTile::row_offset(mt * 16) + cols_a(kp));
#pragma unroll
      for (int dt = 0; dt < DT; dt += 2) {
        u32 vf[4]; // b-fragments of this slice's column tiles dt and dt+1, transposed on load
        ldmatrix_x4_trans(vf, sV_n + v_row + VTile::row_offset(kp * 16) + cols_a(dt / 2));
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          mma_16816<T>(o[mt][dt], pf[mt], vf[0], vf[1]);
          mma_16816<T>(o[mt][dt + 1], pf[mt], vf[2], vf[3]);
        }
      }
    }
  }

  cp_async_wait<0>();
  softmax.share_sum(stats, s_part, s_row, lane);
  __syncthreads(); // partial sums visible; every warp is done with sQ before it stages O
  write_wide_output<K>(p, o, softmax, stats, sQ, b, h, m0, s_row, s_part, o_col, tid);
}

} // namespace attnjit

// Hopper backward, dK/dV kernel (sm_90a): flash_bwd_dkdv_kernel's loop on warpgroup MMAs. One
// CTA per (BLOCK_N keys, batch, KV head[, split]), the same grid and outputs; each warpgroup owns
// 64 keys (BwdWgmmaKeys, which has the per-step math). Every thread loads the next step's Q, dO
// and row statistics with cp.async, and a CTA barrier per step hands the tiles over.
#pragma once

#include <attnjit/bwd_block.cuh>
#include <attnjit/bwd_dkdv_store.cuh>
#include <attnjit/bwd_params.h>
#include <attnjit/bwd_wgmma_keys.cuh>
#include <attnjit/bwd_wgmma_traits.cuh>

namespace attnjit {

template <class K>
__global__ void __launch_bounds__(K::kThreads, 1)
    flash_bwd_dkdv_wgmma_kernel(const __grid_constant__ BwdParams p) {
  allow_next_kernel();
  wait_for_prior_kernels(); // D and the zeroed dQ accumulator
  using T = typename K::T;
  using KTile = typename K::KTile;
  using VTile = typename K::VTile;
  using QTile = typename K::QTile;
  using DoTile = typename K::DoTile;
  using DsTile = typename K::DsTile;
  constexpr int BM = K::kBlockM;
  extern __shared__ __align__(1024) unsigned char smem[];
  const u32 sK = (smem_u32(smem) + 1023) & ~1023u; // (BLOCK_N, Dqk)
  const u32 sV = sK + KTile::kBytes;               // (BLOCK_N, Dv)
  const u32 sQ = sV + VTile::kBytes;               // 2 x (64, Dqk)
  const u32 sDo = sQ + 2 * QTile::kBytes;          // 2 x (64, Dv)
  const u32 sDs = sDo + 2 * DoTile::kBytes;        // (BLOCK_N, 64) dS^T
  const u32 sStats = sDs + DsTile::kBytes;         // 2 x {LSE, D} x 64 fp32
  const float* stats = reinterpret_cast<const float*>(smem + (sStats - smem_u32(smem)));

  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const BwdBlock<BM, K::kBlockN, K::kCausal> block(p);
  const int split = block.split, b = block.b, kv_h = block.kv_h, n0 = block.n0, diag = block.diag;
  const int steps = block.steps;

  const unsigned short *k = block.k, *v = block.v;
  KTile::template load_async<K::kThreads>(sK, k, p.k_seq_stride, p.seqlen_k - n0, tid);
  VTile::template load_async<K::kThreads>(sV, v, p.v_seq_stride, p.seqlen_k - n0, tid);

  auto head_of = [&](int step) { return block.head_of(p, step); };
  auto m0_of = [&](int step) { return block.m0_of(step); };
  auto load_step = [&](int step) {
    const int slot = step & 1, h = head_of(step), m0 = m0_of(step);
    const auto* q = static_cast<const unsigned short*>(p.q) + b * p.q_batch_stride +
                    h * p.q_head_stride + m0 * p.q_seq_stride;
    const auto* d_o = static_cast<const unsigned short*>(p.dout) + b * p.do_batch_stride +
                      h * p.do_head_stride + m0 * p.do_seq_stride;
    QTile::template load_async<K::kThreads>(sQ + slot * QTile::kBytes, q, p.q_seq_stride,
                                            p.seqlen_q - m0, tid);
    DoTile::template load_async<K::kThreads>(sDo + slot * DoTile::kBytes, d_o, p.do_seq_stride,
                                             p.seqlen_q - m0, tid);
    load_row_stats_async<BM, K::kThreads>(p, sStats + slot * 2 * BM * 4, b, h, m0, tid);
  };
  if (steps > 0) load_step(0);
  cp_async_commit(); // K, V and step 0 land together

  BwdWgmmaKeys<K> keys(sK, sV, warp, lane);
  for (int step = 0; step < steps; ++step) {
    cp_async_wait<0>();
    fence_proxy_async();
    __syncthreads(); // step's tiles visible; everyone is done with the slot refilled next and sDs
    if (step == 0) keys.load_kv_fragments();
    if (step + 1 < steps) load_step(step + 1);
    cp_async_commit();
    const int slot = step & 1;
    const float* lse = stats + slot * 2 * BM;
    const int m0 = m0_of(step), h = head_of(step);
    keys.template step<CtaBarrier>(
        p, sQ + slot * QTile::kBytes, sDo + slot * DoTile::kBytes, lse, lse + BM, sDs, n0, m0, diag,
        [] {}, [&](const float(&dq)[K::kDqCols / 8][4]) { keys.add_dq(p, dq, b, h, m0); });
  }
  cp_async_wait<0>();
  if (p.kv_splits == 1)
    store_dkdv<T>(p, keys.dk, keys.dv, b, kv_h, n0 + keys.key0, lane);
  else
    store_dkdv_partial(p, keys.dk, keys.dv, split, b, kv_h, n0 + keys.key0, lane);
}

} // namespace attnjit

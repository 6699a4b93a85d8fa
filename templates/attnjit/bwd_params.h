// Arguments of the backward kernels (pre-pass, dK/dV main kernel, dQ conversion). Plain types
// only: filled by the host compiler, read by NVRTC.
#pragma once

#include <attnjit/fwd_params.h>

namespace attnjit {

struct BwdParams {
  const void* q;    // [B, Sq, H, Dqk]
  const void* k;    // [B, Sk, KV, Dqk]
  const void* v;    // [B, Sk, KV, Dv]
  const void* o;    // [B, Sq, H, Dv], the forward's output
  const void* dout; // [B, Sq, H, Dv]
  const float* lse; // [B, H, Sq], the forward's logsumexp
  void* dq;         // [B, Sq, H, Dqk]
  void* dk;         // [B, Sk, KV, Dqk]
  void* dv;         // [B, Sk, KV, Dv]

  // Workspace, contiguous, owned by the caller: D = rowsum(dO * O) and the fp32 dQ accumulator.
  float* dsum; // [B, H, Sq]
  // Zeroed by the D pre-pass. [B, H, Sq, Dqk], except after the warp-specialized kernel:
  // [B, H, ceil(Sq / 64), Dqk / slice] tiles of 64 rows x slice columns in MMA fragment order
  // (bwd_wgmma_keys.cuh, store_dq).
  float* dq_accum;
  // GQA/MQA with kv_splits > 1: the query heads of a group are split over kv_splits CTAs per key
  // block, each writing fp32 partial dK (scaled) and dV here; a reduction sums them in a fixed
  // order. [kv_splits, B, KV, Sk, Dqk + Dv].
  float* dkv_partial;
  // Warp-specialized kernel (else null): per (batch, KV head), how many of its dK/dV CTAs
  // (num_n_blocks * kv_splits in all) have had their dQ additions land; zeroed by the D
  // pre-pass. The dQ conversion converts a head's rows once its count is complete, while the
  // main kernel's last CTAs still run. [B, KV].
  unsigned* kv_done;

  attnjit_i64 q_batch_stride, q_seq_stride, q_head_stride;
  attnjit_i64 k_batch_stride, k_seq_stride, k_head_stride;
  attnjit_i64 v_batch_stride, v_seq_stride, v_head_stride;
  attnjit_i64 o_batch_stride, o_seq_stride, o_head_stride;
  attnjit_i64 do_batch_stride, do_seq_stride, do_head_stride;
  attnjit_i64 dq_batch_stride, dq_seq_stride, dq_head_stride;
  attnjit_i64 dk_batch_stride, dk_seq_stride, dk_head_stride;
  attnjit_i64 dv_batch_stride, dv_seq_stride, dv_head_stride;

  int batch;
  int num_heads;
  int num_kv_heads;
  int heads_per_kv;
  int kv_splits; // divides heads_per_kv
  int seqlen_q;
  int seqlen_k;
  int num_m_blocks; // ceil(seqlen_q / BLOCK_M) of the main kernel
  int num_n_blocks; // ceil(seqlen_k / BLOCK_N); main grid.x = num_n_blocks * B * KV * kv_splits
  // Causal: (split, batch, KV head) groups whose key blocks are walked heaviest first together
  // (BwdBlock); at least the number of groups means all of them.
  int causal_chunk;
  // Rows per (batch, head) of dq_accum (Sq, or Sq padded to whole 64-row tiles), which the D
  // pre-pass zeroes; 0 without an accumulator.
  int dq_accum_rows;

  float softmax_scale;
  float softmax_scale_log2;
};

} // namespace attnjit

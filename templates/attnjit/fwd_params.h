// Arguments of the forward kernel. Plain types only: this header is compiled both by the host
// compiler (which fills it) and by NVRTC (which reads it), so both agree on the layout.
#pragma once

#ifdef __CUDACC_RTC__
typedef long long attnjit_i64;
#else
#include <cstdint>
typedef int64_t attnjit_i64;
#endif

namespace attnjit {

struct FwdParams {
  const void* q; // [B, Sq, H, D] through the strides below (elements)
  const void* k; // [B, Sk, KV, D]
  const void* v; // [B, Sk, KV, Dv]; unread by the wide kernel when V_FROM_K (K's first Dv)
  void* o;       // [B, Sq, H, Dv]
  float* lse;    // [B, H, Sq], contiguous

  attnjit_i64 q_batch_stride, q_seq_stride, q_head_stride;
  attnjit_i64 k_batch_stride, k_seq_stride, k_head_stride;
  attnjit_i64 v_batch_stride, v_seq_stride, v_head_stride;
  attnjit_i64 o_batch_stride, o_seq_stride, o_head_stride;

  int batch;
  int num_heads;
  int heads_per_kv; // num_heads / num_kv_heads
  int seqlen_q;
  int seqlen_k;
  int num_m_blocks;  // ceil(seqlen_q / BLOCK_M); grid.x = num_m_blocks * batch * num_heads
  int causal_groups; // groups of (batch, head) pairs in the causal tile order (FwdBlock)

  float softmax_scale;      // applied to Q K^T
  float softmax_scale_log2; // softmax_scale * log2(e): scores feed exp2 directly
};

} // namespace attnjit

/* A host program using attnjit through its C API (as any FFI binding does): the version, a
 * tuning-cache lookup (no GPU needed), then a forward and a backward plan run on constant inputs,
 * whose results are known exactly: O equals V and dQ is zero. Without a GPU it says so after the
 * lookup and exits 0.
 *
 *   host_app_c [tuning.db]      (default: attnjit-example.db in the current folder) */
#include <attnjit/c_api.h>

#include <cuda_runtime_api.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK_ATTNJIT(call)                                                                        \
  do {                                                                                             \
    if ((call) != ATTNJIT_OK) {                                                                    \
      fprintf(stderr, "host_app_c: error: %s\n", attnjit_last_error());                            \
      return 1;                                                                                    \
    }                                                                                              \
  } while (0)

#define CHECK_CUDA(call)                                                                           \
  do {                                                                                             \
    cudaError_t result_ = (call);                                                                  \
    if (result_ != cudaSuccess) {                                                                  \
      fprintf(stderr, "host_app_c: %s: %s\n", #call, cudaGetErrorString(result_));                 \
      return 1;                                                                                    \
    }                                                                                              \
  } while (0)

static const char* source_name(int32_t source) {
  static const char* names[] = {"exact", "bucket", "default", "caller", "tuned", "waited"};
  return source >= 0 && source < 6 ? names[source] : "?";
}

int main(int argc, char** argv) {
  const char* database = argc > 1 ? argv[1] : "attnjit-example.db";
  printf("attnjit %s (C API %d)\n", attnjit_version(), attnjit_c_api_version());

  attnjit_problem problem;
  CHECK_ATTNJIT(attnjit_problem_init(&problem));
  problem.head_dim_qk = problem.head_dim_v = 64;
  problem.num_heads = 8, problem.num_kv_heads = 2; /* GQA */
  problem.mask = ATTNJIT_MASK_CAUSAL;
  problem.batch = 1, problem.seqlen_q = problem.seqlen_k = 512;

  /* What an H100 would run for this problem, by the database: a lookup needs no GPU. */
  attnjit_cache* cache = NULL;
  CHECK_ATTNJIT(attnjit_cache_open(database, NULL, 0, &cache));
  attnjit_lookup found;
  CHECK_ATTNJIT(attnjit_cache_lookup(cache, "NVIDIA H100 80GB HBM3", "sm_90a", &problem, &found));
  printf(
      "H100 config: block_m=%d block_n=%d warps=%d stages=%d wgmma=%d warp_specialized=%d (%s)\n",
      found.config.block_m, found.config.block_n, found.config.num_warps, found.config.num_stages,
      found.config.wgmma, found.config.warp_specialized, source_name(found.source));
  attnjit_cache_close(cache);

  CHECK_ATTNJIT(attnjit_set_cache_location(database, NULL, NULL));
  attnjit_forward_plan* forward = NULL;
  attnjit_status status = attnjit_forward_plan_create(&problem, NULL, 0, &forward);
  if (status == ATTNJIT_ERROR_NO_DEVICE) {
    printf("host_app_c: skipped: no GPU (%s)\n", attnjit_last_error());
    return 0;
  }
  CHECK_ATTNJIT(status);
  attnjit_problem backward_problem = problem;
  backward_problem.pass = ATTNJIT_PASS_BACKWARD;
  attnjit_backward_plan* backward = NULL;
  CHECK_ATTNJIT(attnjit_backward_plan_create(&backward_problem, NULL, 0, &backward));
  size_t workspace_bytes = 0;
  CHECK_ATTNJIT(attnjit_backward_plan_workspace_size(backward, &workspace_bytes));

  const int64_t s = problem.seqlen_q, h = problem.num_heads, kv = problem.num_kv_heads;
  const int64_t d = problem.head_dim_qk;
  const size_t q_bytes = (size_t)(s * h * d * 2), kv_bytes = (size_t)(s * kv * d * 2);
  void *q, *k, *v, *o, *lse, *dout, *dq, *dk, *dv, *workspace;
  CHECK_CUDA(cudaMalloc(&q, q_bytes));
  CHECK_CUDA(cudaMalloc(&k, kv_bytes));
  CHECK_CUDA(cudaMalloc(&v, kv_bytes));
  CHECK_CUDA(cudaMalloc(&o, q_bytes));
  CHECK_CUDA(cudaMalloc(&lse, (size_t)(h * s * 4)));
  CHECK_CUDA(cudaMalloc(&dout, q_bytes));
  CHECK_CUDA(cudaMalloc(&dq, q_bytes));
  CHECK_CUDA(cudaMalloc(&dk, kv_bytes));
  CHECK_CUDA(cudaMalloc(&dv, kv_bytes));
  CHECK_CUDA(cudaMalloc(&workspace, workspace_bytes));
  /* Every element 0x3f3f (bf16 0.746): all keys score alike, so O = V exactly, and dS = 0. */
  void* inputs[] = {q, k, v, dout};
  for (int i = 0; i < 4; ++i)
    CHECK_CUDA(cudaMemset(inputs[i], 0x3f, i == 1 || i == 2 ? kv_bytes : q_bytes));

  attnjit_forward_args f;
  f.q = attnjit_contiguous_bshd(q, s, h, d);
  f.k = attnjit_contiguous_bshd(k, s, kv, d);
  f.v = attnjit_contiguous_bshd(v, s, kv, d);
  f.o = attnjit_contiguous_bshd(o, s, h, d);
  f.lse = (float*)lse;
  CHECK_ATTNJIT(attnjit_forward_plan_run(forward, &f, NULL));
  attnjit_backward_args b;
  b.q = f.q, b.k = f.k, b.v = f.v, b.o = f.o;
  b.dout = attnjit_contiguous_bshd(dout, s, h, d);
  b.lse = f.lse;
  b.dq = attnjit_contiguous_bshd(dq, s, h, d);
  b.dk = attnjit_contiguous_bshd(dk, s, kv, d);
  b.dv = attnjit_contiguous_bshd(dv, s, kv, d);
  b.workspace = workspace, b.workspace_bytes = workspace_bytes;
  CHECK_ATTNJIT(attnjit_backward_plan_run(backward, &b, NULL));
  CHECK_CUDA(cudaDeviceSynchronize());

  uint16_t* host = (uint16_t*)malloc(q_bytes);
  int64_t wrong_o = 0, wrong_dq = 0;
  CHECK_CUDA(cudaMemcpy(host, o, q_bytes, cudaMemcpyDeviceToHost));
  for (int64_t i = 0; i < s * h * d; ++i)
    wrong_o += host[i] != 0x3f3f;
  CHECK_CUDA(cudaMemcpy(host, dq, q_bytes, cudaMemcpyDeviceToHost));
  for (int64_t i = 0; i < s * h * d; ++i)
    wrong_dq += (host[i] & 0x7fff) != 0; /* +0 or -0 */
  free(host);
  printf("ran forward and backward: %lld elements of O differ from V, %lld of dQ are not 0\n",
         (long long)wrong_o, (long long)wrong_dq);

  void* buffers[] = {q, k, v, o, lse, dout, dq, dk, dv, workspace};
  for (int i = 0; i < 10; ++i)
    cudaFree(buffers[i]);
  attnjit_backward_plan_destroy(backward);
  attnjit_forward_plan_destroy(forward);
  return wrong_o == 0 && wrong_dq == 0 ? 0 : 1;
}

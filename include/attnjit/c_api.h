/* attnjit's C API: plans, forward, backward, workspace size and the tuning cache, behind opaque
 * handles and status codes. One header, C99 and C++, for FFI from any language (python/attnjit
 * uses it through ctypes). The library is libattnjit_c.so, which holds everything else inside
 * and exports only the attnjit_* functions below; it needs libnvrtc at run time, and the NVIDIA
 * driver to run kernels. docs/C_API.md is the reference.
 *
 *   attnjit_problem problem;
 *   attnjit_problem_init(&problem);             // the CLI's default problem; change fields
 *   attnjit_forward_plan* plan = NULL;
 *   if (attnjit_forward_plan_create(&problem, NULL, 0, &plan) != ATTNJIT_OK)
 *     fprintf(stderr, "%s\n", attnjit_last_error());
 *
 * Errors: every function that can fail returns an attnjit_status; on failure,
 * attnjit_last_error() says why (the function, then the first problem found, with the spec or
 * shape it belongs to). The message is kept per thread and describes the most recent call on
 * that thread that returned a status: "" after a success. Nothing here prints, exits or lets a
 * C++ exception cross into the caller. */
#ifndef ATTNJIT_C_API_H
#define ATTNJIT_C_API_H

#include <attnjit/version.h>

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Raised when a struct below or a function's signature changes; attnjit_c_api_version() returns
 * the library's, so a binding can refuse a library it was not written for. */
#define ATTNJIT_C_API_VERSION 3

#if defined(__GNUC__)
#define ATTNJIT_C_EXPORT __attribute__((visibility("default")))
#else
#define ATTNJIT_C_EXPORT
#endif

/* ---- Status ------------------------------------------------------------------------------ */

/* One value per attnjit::ErrorKind, in its order. */
typedef enum attnjit_status {
  ATTNJIT_OK = 0,
  ATTNJIT_ERROR_INVALID_ARGUMENT = 1, /* bad problem, config, pointer, stride or handle */
  ATTNJIT_ERROR_UNSUPPORTED = 2,      /* valid, but not served (head dim, arch) */
  ATTNJIT_ERROR_NO_DEVICE = 3,        /* no driver or no GPU; the message says which */
  ATTNJIT_ERROR_DRIVER = 4,           /* a CUDA driver call failed */
  ATTNJIT_ERROR_COMPILE = 5,          /* NVRTC rejected the generated source */
  ATTNJIT_ERROR_CACHE = 6,            /* a tuning database could not be opened or read */
  ATTNJIT_ERROR_INTERNAL = 7          /* a bug, or out of host memory */
} attnjit_status;

/* "ATTNJIT_OK", "ATTNJIT_ERROR_INVALID_ARGUMENT", ...; "ATTNJIT_STATUS_UNKNOWN" otherwise. */
ATTNJIT_C_EXPORT const char* attnjit_status_name(attnjit_status status);
/* Why this thread's most recent status-returning call failed; "" when it succeeded. Valid until
 * the thread's next such call. Never NULL. */
ATTNJIT_C_EXPORT const char* attnjit_last_error(void);

/* ATTNJIT_VERSION of the library ("0.1.0"), which may differ from the header's. */
ATTNJIT_C_EXPORT const char* attnjit_version(void);
/* ATTNJIT_C_API_VERSION of the library. */
ATTNJIT_C_EXPORT int attnjit_c_api_version(void);

/* GPUs the driver reports. ATTNJIT_ERROR_NO_DEVICE when there is no usable driver. */
ATTNJIT_C_EXPORT attnjit_status attnjit_device_count(int* count);

/* ---- The problem ------------------------------------------------------------------------- */

/* Enum fields are int32_t in the structs below, so their size does not depend on the compiler. */
enum { ATTNJIT_PASS_FORWARD = 0, ATTNJIT_PASS_BACKWARD = 1 };
enum { ATTNJIT_DTYPE_BF16 = 0, ATTNJIT_DTYPE_FP16 = 1 };
/* SEPARATE: q, k, v are three tensors. PACKED_QKV: one [B, S, 3, H, D] buffer, given as its three
 * slices (needs num_kv_heads == num_heads, one head dim, seqlen_q == seqlen_k). V_IN_K: no V
 * tensor; V is the first head_dim_v columns of K (absorbed MLA's latent cache), and the args' v
 * is k again. */
enum { ATTNJIT_LAYOUT_SEPARATE = 0, ATTNJIT_LAYOUT_PACKED_QKV = 1, ATTNJIT_LAYOUT_V_IN_K = 2 };
/* CAUSAL is aligned bottom-right, as FlashAttention-2's: query i sees key j iff
 * j <= i + seqlen_k - seqlen_q (the same as top-left when seqlen_q == seqlen_k). */
enum { ATTNJIT_MASK_NONE = 0, ATTNJIT_MASK_CAUSAL = 1 };

/* attnjit::AttentionProblem: what to compute. The spec part (pass .. deterministic) and the shape
 * part (batch .. seqlen_k) are the tuning cache's key. */
typedef struct attnjit_problem {
  int32_t pass;  /* ATTNJIT_PASS_*: a forward plan needs FORWARD, a backward plan BACKWARD */
  int32_t dtype; /* ATTNJIT_DTYPE_*: of q, k, v, o and the gradients */
  int32_t head_dim_qk;
  int32_t head_dim_v;
  int32_t num_heads;     /* query heads */
  int32_t num_kv_heads;  /* divides num_heads; fewer is GQA, 1 is MQA */
  int32_t layout;        /* ATTNJIT_LAYOUT_* */
  int32_t mask;          /* ATTNJIT_MASK_* */
  int32_t deterministic; /* backward only: 1 for the same bits on every run */
  int32_t reserved;      /* 0 */
  int64_t batch;
  int64_t seqlen_q;
  int64_t seqlen_k;
  float softmax_scale; /* 0 means 1/sqrt(head_dim_qk) */
} attnjit_problem;

/* Fills `problem` with the CLI's default problem: forward, bf16, d128, 32/32 heads, separate,
 * no mask, B=1, Sq=Sk=4096, scale 0. */
ATTNJIT_C_EXPORT attnjit_status attnjit_problem_init(attnjit_problem* problem);
/* The checks a plan makes before it touches the GPU: ATTNJIT_ERROR_INVALID_ARGUMENT or
 * ATTNJIT_ERROR_UNSUPPORTED naming the first problem found. */
ATTNJIT_C_EXPORT attnjit_status attnjit_problem_validate(const attnjit_problem* problem);

/* attnjit::TileConfig: how a kernel tiles the problem. */
typedef struct attnjit_tile_config {
  int32_t block_m; /* query rows per thread block */
  int32_t block_n; /* keys per main-loop step */
  int32_t num_warps;
  int32_t num_stages; /* K/V shared-memory pipeline depth */
  int32_t q_in_registers;
  int32_t wgmma; /* 0 or 1: Hopper warpgroup MMA path (sm_90a only); added in C API version 2 */
  /* 0 or 1: with wgmma, one extra warpgroup only loads (forward only); added in C API version 3 */
  int32_t warp_specialized;
} attnjit_tile_config;

/* One [batch, seq, head, dim] tensor in device memory. Strides in elements, non-negative
 * multiples of 8; the head dim is contiguous; data 16-byte aligned. */
typedef struct attnjit_tensor {
  const void* data;
  int64_t batch_stride;
  int64_t seq_stride;
  int64_t head_stride;
} attnjit_tensor;

/* Contiguous [B, S, H, D] strides. */
ATTNJIT_C_EXPORT attnjit_tensor attnjit_contiguous_bshd(const void* data, int64_t seqlen,
                                                        int64_t heads, int64_t head_dim);

/* CUstream or cudaStream_t (the same pointer); NULL is the legacy default stream. */
typedef struct CUstream_st* attnjit_stream;

/* Where a plan's config came from. */
enum {
  ATTNJIT_CONFIG_EXACT = 0,   /* a tuning record of this exact shape */
  ATTNJIT_CONFIG_BUCKET = 1,  /* a record of a shape in the same bucket */
  ATTNJIT_CONFIG_DEFAULT = 2, /* the default table: nothing tuned */
  ATTNJIT_CONFIG_CALLER = 3,  /* the config passed to *_plan_create */
  ATTNJIT_CONFIG_TUNED = 4,   /* tuned on a miss by this plan (C++ PlanOptions::tune_on_miss) */
  ATTNJIT_CONFIG_WAITED = 5   /* tuned on a miss by another process or thread, waited for */
};

/* What a plan chose and what its kernel uses. */
typedef struct attnjit_plan_info {
  attnjit_tile_config config;
  int32_t config_source;     /* ATTNJIT_CONFIG_* */
  int32_t binary_from_cache; /* 1: the cubin came from the database, no NVRTC work */
  int32_t registers_per_thread;
  int32_t shared_memory_bytes;
  int32_t local_memory_bytes; /* > 0 means register spills */
  uint64_t workspace_bytes;   /* backward plans; 0 for forward plans */
  /* Problems with the tuning databases met while planning, one a line; "" for none. Lives as
   * long as the plan. */
  const char* cache_warnings;
} attnjit_plan_info;

/* ---- Forward ----------------------------------------------------------------------------- */

typedef struct attnjit_forward_plan attnjit_forward_plan;

typedef struct attnjit_forward_args {
  attnjit_tensor q, k, v; /* [B, Sq, H, Dqk], [B, Sk, KV, Dqk], [B, Sk, KV, Dv] */
  attnjit_tensor o;       /* written: [B, Sq, H, Dv] */
  float* lse;             /* written: [B, H, Sq] fp32, natural-log logsumexp of the scaled scores */
} attnjit_forward_args;

/* Validates the problem, picks the config (config == NULL: the tuning cache, else the default
 * table), generates, compiles (or loads the cached cubin) and loads the kernel on `device`.
 * *plan is NULL on failure. */
ATTNJIT_C_EXPORT attnjit_status attnjit_forward_plan_create(const attnjit_problem* problem,
                                                            const attnjit_tile_config* config,
                                                            int device,
                                                            attnjit_forward_plan** plan);
/* NULL is fine. The kernel stays loaded for the process, so work already enqueued is safe. */
ATTNJIT_C_EXPORT void attnjit_forward_plan_destroy(attnjit_forward_plan* plan);
ATTNJIT_C_EXPORT attnjit_status attnjit_forward_plan_info(const attnjit_forward_plan* plan,
                                                          attnjit_plan_info* info);
/* Checks the arguments (null, misaligned, overlapping) and enqueues one kernel on `stream`: no
 * allocation, no synchronisation, so it can be captured in a CUDA graph. Any thread. */
ATTNJIT_C_EXPORT attnjit_status attnjit_forward_plan_run(const attnjit_forward_plan* plan,
                                                         const attnjit_forward_args* args,
                                                         attnjit_stream stream);

/* ---- Backward ---------------------------------------------------------------------------- */

typedef struct attnjit_backward_plan attnjit_backward_plan;

/* For packed QKV, dq, dk, dv are the three slices of one packed gradient buffer, like q, k, v. */
typedef struct attnjit_backward_args {
  attnjit_tensor q, k, v;
  attnjit_tensor o;          /* the forward's output */
  attnjit_tensor dout;       /* dO, [B, Sq, H, Dv] */
  const float* lse;          /* the forward's [B, H, Sq] */
  attnjit_tensor dq, dk, dv; /* written */
  /* At least attnjit_backward_plan_workspace_size() bytes of device memory, 16-byte aligned,
   * used only while the run's kernels execute. */
  void* workspace;
  size_t workspace_bytes;
} attnjit_backward_args;

ATTNJIT_C_EXPORT attnjit_status attnjit_backward_plan_create(const attnjit_problem* problem,
                                                             const attnjit_tile_config* config,
                                                             int device,
                                                             attnjit_backward_plan** plan);
ATTNJIT_C_EXPORT void attnjit_backward_plan_destroy(attnjit_backward_plan* plan);
ATTNJIT_C_EXPORT attnjit_status attnjit_backward_plan_info(const attnjit_backward_plan* plan,
                                                           attnjit_plan_info* info);
/* Known when the plan is made, so a host can allocate once. */
ATTNJIT_C_EXPORT attnjit_status
attnjit_backward_plan_workspace_size(const attnjit_backward_plan* plan, size_t* bytes);
/* Enqueues the D pre-pass, the dK/dV kernel and the dQ kernel on `stream`: no allocation. dK and
 * dV are deterministic; dQ is too when the problem asks for `deterministic`. */
ATTNJIT_C_EXPORT attnjit_status attnjit_backward_plan_run(const attnjit_backward_plan* plan,
                                                          const attnjit_backward_args* args,
                                                          attnjit_stream stream);

/* ---- The tuning cache (docs/CACHE.md) ---------------------------------------------------- */

/* Where plans look for tuning databases, for plans created after the call, in this process.
 * Each argument: NULL keeps what the environment says ($ATTNJIT_CACHE_DB, $ATTNJIT_BASE_DB,
 * $ATTNJIT_BASE_DIR), "" means none, anything else is a path. user_db: the writable database
 * (created when missing). base_db: a read-only database. base_dir: a folder of read-only
 * <gpu-sku-slug>.db files, one per GPU model; base_db wins over it. */
ATTNJIT_C_EXPORT attnjit_status attnjit_set_cache_location(const char* user_db, const char* base_db,
                                                           const char* base_dir);
/* The databases a plan on GPU `sku` ("NVIDIA H100 80GB HBM3") would use now; "" for none. The
 * strings are valid until this thread calls the function again. */
ATTNJIT_C_EXPORT attnjit_status attnjit_cache_location(const char* sku, const char** user_db,
                                                       const char** base_db);

typedef struct attnjit_cache attnjit_cache;

/* Open the user database read-only (no file is created or changed). */
#define ATTNJIT_CACHE_USER_READ_ONLY 1u

/* Opens a user database (NULL or "": none) layered over a read-only base database (NULL or "":
 * none), as plans see them. Unlike plans, which go on without a database they cannot use, this
 * fails with ATTNJIT_ERROR_CACHE when a named database cannot be opened. One thread at a time
 * per handle. */
ATTNJIT_C_EXPORT attnjit_status attnjit_cache_open(const char* user_db, const char* base_db,
                                                   unsigned flags, attnjit_cache** cache);
ATTNJIT_C_EXPORT void attnjit_cache_close(attnjit_cache* cache);

typedef struct attnjit_lookup {
  attnjit_tile_config config;
  int32_t source; /* ATTNJIT_CONFIG_EXACT, _BUCKET or _DEFAULT */
  /* The file that served it; "" for the default. Valid until the next call on this handle. */
  const char* database;
  /* A database that failed during the lookup and was left out, one a line; "" for none. Valid
   * until the next call on this handle. */
  const char* warnings;
} attnjit_lookup;

/* The config a plan for `problem` would get on GPU `sku` with NVRTC target `arch` ("sm_90a";
 * "sm_80", "sm_86", "sm_89" and "sm_90a" are known without a GPU). sku or arch NULL: GPU 0's. */
ATTNJIT_C_EXPORT attnjit_status attnjit_cache_lookup(attnjit_cache* cache, const char* sku,
                                                     const char* arch,
                                                     const attnjit_problem* problem,
                                                     attnjit_lookup* result);
/* Tuning records in the user and base databases together. */
ATTNJIT_C_EXPORT attnjit_status attnjit_cache_record_count(attnjit_cache* cache, int64_t* count);

#ifdef __cplusplus
}
#endif

#endif

// Thin wrappers over the PTX the kernels use: tensor-core MMA, ldmatrix, cp.async, ex2.
// Each is one instruction; names follow the PTX mnemonics so the SASS is easy to map back.
#pragma once

#include <attnjit/types.cuh>

namespace attnjit {

// Programmatic dependent launch (sm_90; nothing before): the backward launches each kernel after
// the first so that it may start while the one before it finishes (codegen/backward_launch.cpp).
// Such a kernel waits here before it reads or writes what an earlier kernel writes (or, the dQ
// conversion, on counters the kernel before publishes per head, see BwdParams::kv_done); a
// kernel launched the usual way returns at once. Data from before the first kernel needs no
// wait. The wait covers only the kernel just before, so every CTA of a kernel that others
// follow must wait somewhere, early exits included: its finishing then implies its
// predecessors' did.
__device__ __forceinline__ void wait_for_prior_kernels() {
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Lets the next kernel launch once every CTA of this one has called it (or exited). Called at a
// kernel's start (the warp-specialized dK/dV kernel: after its wait, see there): by then the
// grid's last CTAs are resident, so the next kernel's CTAs take only what this one's finished
// CTAs leave free.
__device__ __forceinline__ void allow_next_kernel() {
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;");
#endif
}

// Counters that one kernel's CTAs publish and another kernel's CTAs wait on, at GPU scope.
__device__ __forceinline__ void add_release(unsigned* counter, unsigned value) {
  asm volatile("red.release.gpu.global.add.u32 [%0], %1;" ::"l"(counter), "r"(value) : "memory");
}
__device__ __forceinline__ unsigned load_acquire(const unsigned* counter) {
  unsigned value;
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(value) : "l"(counter) : "memory");
  return value;
}

__device__ __forceinline__ u32 smem_u32(const void* ptr) {
  u64 a;
  asm("cvta.to.shared.u64 %0, %1;" : "=l"(a) : "l"(ptr));
  return static_cast<u32>(a);
}

// D (16x8 fp32) += A (16x16, row) * B (16x8, col). Fragment layouts as in the PTX ISA:
// a[0..3] rows {g, g+8} x cols {2t, 2t+1, 2t+8, 2t+9}; b[0..1] k {2t, 2t+1, 2t+8, 2t+9} x n g;
// d[0..3] rows {g, g+8} x cols {2t, 2t+1}, where g = lane / 4 and t = lane % 4.
template <class T>
__device__ __forceinline__ void mma_16816(float (&d)[4], const u32 (&a)[4], u32 b0, u32 b1);

template <>
__device__ __forceinline__ void mma_16816<bf16_t>(float (&d)[4], const u32 (&a)[4], u32 b0,
                                                  u32 b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
               "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

template <>
__device__ __forceinline__ void mma_16816<fp16_t>(float (&d)[4], const u32 (&a)[4], u32 b0,
                                                  u32 b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
               "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Four 8x8 b16 matrices; lanes 8i..8i+7 give the row addresses of matrix i.
__device__ __forceinline__ void ldmatrix_x4(u32 (&r)[4], u32 addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

__device__ __forceinline__ void ldmatrix_x4_trans(u32 (&r)[4], u32 addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// 16-byte global -> shared copy that bypasses L1. src_bytes == 0 zero-fills the destination,
// which is how rows past the end of a sequence become zeros without a branch in the math.
__device__ __forceinline__ void cp_async_16(u32 smem_addr, const void* gmem, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(smem_addr), "l"(gmem),
               "r"(src_bytes));
}

// 4-byte variant (cached at all levels, as PTX requires for sizes under 16), for row statistics
// whose rows need not be 16-byte aligned.
__device__ __forceinline__ void cp_async_4(u32 smem_addr, const void* gmem, int src_bytes) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;" ::"r"(smem_addr), "l"(gmem),
               "r"(src_bytes));
}

__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;");
}

template <int N> __device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(N));
}

__device__ __forceinline__ float ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// Fire-and-forget fp32 add to global memory (no return value, so RED rather than ATOM).
__device__ __forceinline__ void red_add(float* addr, float value) {
  asm volatile("red.global.add.f32 [%0], %1;" ::"l"(addr), "f"(value) : "memory");
}

// Two adjacent fp32 adds in one request: Hopper has vector RED, which halves the L2 atomic
// requests of the backward's dQ accumulation; earlier GPUs issue two scalar ones.
__device__ __forceinline__ void red_add2(float* addr, float a, float b) {
#if __CUDA_ARCH__ >= 900
  asm volatile("red.global.add.v2.f32 [%0], {%1, %2};" ::"l"(addr), "f"(a), "f"(b) : "memory");
#else
  red_add(addr, a);
  red_add(addr + 1, b);
#endif
}

__device__ __forceinline__ float lg2(float x) {
  float y;
  asm("lg2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// Barriers a kernel's shared-memory handoffs sync on, passed as template arguments to code that
// both kinds of kernel share: the whole CTA, or (warp-specialized kernels, whose loading
// warpgroup has gone its own way) THREADS threads of whole warps under hardware barrier ID
// (0 is __syncthreads').
struct CtaBarrier {
  static __device__ __forceinline__ void sync() { __syncthreads(); }
};

template <int ID, int THREADS> struct NamedBarrier {
  static __device__ __forceinline__ void sync() {
    asm volatile("bar.sync %0, %1;" ::"n"(ID), "n"(THREADS) : "memory");
  }
};

// Named barrier `id` (a run-time value, so a warpgroup can pick its own) over `threads` threads:
// wait for the rest, or count this warp's arrival and go on.
__device__ __forceinline__ void named_barrier_sync(int id, int threads) {
  asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(threads) : "memory");
}
__device__ __forceinline__ void named_barrier_arrive(int id, int threads) {
  asm volatile("bar.arrive %0, %1;" ::"r"(id), "r"(threads) : "memory");
}

} // namespace attnjit

// 16-bit element types and the conversions the kernels need. NVRTC 13 ships no cuda_bf16.h or
// cuda_fp16.h, so the types are plain 16-bit payloads and every conversion is one PTX instruction.
#pragma once

namespace attnjit {

typedef unsigned int u32;
typedef unsigned long long u64;
typedef long long i64;

struct bf16_t {
  unsigned short bits;
};
struct fp16_t {
  unsigned short bits;
};

template <class T> struct Dtype;

template <> struct Dtype<bf16_t> {
  // Two fp32 -> packed bf16x2 (round to nearest even); `lo` lands in the low half.
  static __device__ __forceinline__ u32 pack(float lo, float hi) {
    u32 r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
  }
  // bf16 is the top half of an fp32: widening is a shift, exact.
  static __device__ __forceinline__ float lo(u32 packed) { return __uint_as_float(packed << 16); }
  static __device__ __forceinline__ float hi(u32 packed) {
    return __uint_as_float(packed & 0xffff0000u);
  }
};

template <> struct Dtype<fp16_t> {
  static __device__ __forceinline__ u32 pack(float lo, float hi) {
    u32 r;
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
  }
  static __device__ __forceinline__ float lo(u32 packed) {
    float r;
    asm("cvt.f32.f16 %0, %1;" : "=f"(r) : "h"(static_cast<unsigned short>(packed & 0xffffu)));
    return r;
  }
  static __device__ __forceinline__ float hi(u32 packed) {
    float r;
    asm("cvt.f32.f16 %0, %1;" : "=f"(r) : "h"(static_cast<unsigned short>(packed >> 16)));
    return r;
  }
};

__device__ __forceinline__ float neg_inf() {
  return __int_as_float(0xff800000);
}

} // namespace attnjit

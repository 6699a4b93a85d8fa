// Checks of the device arguments a plan's run() receives: null and misaligned pointers, strides
// the kernels cannot use, and outputs that would overlap themselves or anything else. Cheap
// integer work only: run() must stay free of allocation, synchronisation and compilation.
#pragma once

#include <attnjit/plan.h>

#include <array>
#include <cstdint>

namespace attnjit::codegen {

// A [batch, seq, heads, dim] view with its sizes, as run() sees it.
struct ViewExtent {
  const char* name;
  TensorView view;
  std::array<int64_t, 3> sizes; // batch, seq, heads
  int64_t dim;                  // contiguous last dimension

  uintptr_t begin() const;
  uintptr_t end() const; // one past the last byte touched (2-byte elements)
  bool empty() const { return sizes[0] == 0 || sizes[1] == 0 || sizes[2] == 0; }
};

// Raw device memory (LSE, workspace).
struct ByteRange {
  const char* name;
  uintptr_t begin, end;
};

// Not null, 16-byte aligned, strides non-negative multiples of 8 elements.
void check_view(const ViewExtent& view);
// No two elements of an output share an address.
void check_no_self_overlap(const ViewExtent& view);
// Throws when `out` may write an element of `other` (or `other` reads what `out` writes).
// Views interleaved in one buffer, as the slices of a packed [B, S, 3, H, D] tensor, pass.
void check_disjoint(const ViewExtent& out, const ViewExtent& other);
void check_disjoint(const ViewExtent& out, const ByteRange& other);
void check_disjoint(const ByteRange& out, const ByteRange& other);

// Layout::v_in_k: the kernel reads V from K's tile, so v must be k's very view (same data and
// strides); anything else would be ignored, so it is refused.
void check_v_in_k(const TensorView& k, const TensorView& v, int64_t head_dim_v);

ByteRange fp32_range(const char* name, const float* data, int64_t count);
void check_pointer(const char* name, const void* data, int alignment);

} // namespace attnjit::codegen

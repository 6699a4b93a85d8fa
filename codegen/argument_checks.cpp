#include "codegen/argument_checks.h"

#include <attnjit/error.h>

#include <fmt/format.h>

#include <algorithm>

namespace attnjit::codegen {

uintptr_t ViewExtent::begin() const {
  return reinterpret_cast<uintptr_t>(view.data);
}

uintptr_t ViewExtent::end() const {
  if (empty()) return begin();
  int64_t last = dim;
  const std::array<int64_t, 3> strides{view.batch_stride, view.seq_stride, view.head_stride};
  for (int i = 0; i < 3; ++i)
    last += (sizes[i] - 1) * strides[i];
  return begin() + uintptr_t(last) * 2;
}

static Error bad(const std::string& message) {
  return Error(ErrorKind::invalid_argument, message);
}

void check_view(const ViewExtent& e) {
  if (e.view.data == nullptr) throw bad(fmt::format("{} is null", e.name));
  if (e.begin() % 16 != 0)
    throw bad(fmt::format("{} ({}) is not 16-byte aligned", e.name, e.view.data));
  for (auto [stride, what] :
       {std::pair{e.view.batch_stride, "batch"}, std::pair{e.view.seq_stride, "seq"},
        std::pair{e.view.head_stride, "head"}})
    if (stride < 0 || stride % 8 != 0)
      throw bad(fmt::format("{} {} stride {} must be a non-negative multiple of 8 elements "
                            "(16 bytes)",
                            e.name, what, stride));
}

// Walk the dims from the smallest stride up: each must step past all that the smaller ones cover.
void check_no_self_overlap(const ViewExtent& e) {
  if (e.empty()) return; // nothing is written, whatever the strides say
  std::array<std::pair<int64_t, int64_t>, 3> dims{std::pair{e.view.batch_stride, e.sizes[0]},
                                                  std::pair{e.view.seq_stride, e.sizes[1]},
                                                  std::pair{e.view.head_stride, e.sizes[2]}};
  std::sort(dims.begin(), dims.end());
  int64_t span = e.dim;
  for (auto [stride, size] : dims) {
    if (size <= 1) continue;
    if (stride < span)
      throw bad(fmt::format("{} strides (batch {}, seq {}, head {}) make its elements overlap",
                            e.name, e.view.batch_stride, e.view.seq_stride, e.view.head_stride));
    span = stride * (size - 1) + span;
  }
}

static bool ranges_overlap(uintptr_t a0, uintptr_t a1, uintptr_t b0, uintptr_t b1) {
  return a0 < b1 && b0 < a1;
}

// Two views with the same batch and seq strides whose (all heads of one position) rows sit side
// by side within one seq stride never share an element: the packed-QKV case.
static bool interleaved(const ViewExtent& a, const ViewExtent& b) {
  if (a.view.batch_stride != b.view.batch_stride || a.view.seq_stride != b.view.seq_stride)
    return false;
  const ViewExtent& lo = a.begin() <= b.begin() ? a : b;
  const ViewExtent& hi = a.begin() <= b.begin() ? b : a;
  const int64_t gap = int64_t(hi.begin() - lo.begin()) / 2; // elements
  auto row_span = [](const ViewExtent& e) { return (e.sizes[2] - 1) * e.view.head_stride + e.dim; };
  const int64_t seq_stride = a.view.seq_stride;
  return row_span(lo) <= gap && gap + row_span(hi) <= seq_stride &&
         (a.sizes[0] <= 1 || a.view.batch_stride >= seq_stride * std::max(a.sizes[1], b.sizes[1]));
}

void check_disjoint(const ViewExtent& out, const ViewExtent& other) {
  if (out.empty() || other.empty()) return;
  if (!ranges_overlap(out.begin(), out.end(), other.begin(), other.end())) return;
  if (interleaved(out, other)) return;
  throw bad(fmt::format("{} overlaps {}", out.name, other.name));
}

void check_disjoint(const ViewExtent& out, const ByteRange& other) {
  if (!out.empty() && ranges_overlap(out.begin(), out.end(), other.begin, other.end))
    throw bad(fmt::format("{} overlaps {}", out.name, other.name));
}

void check_disjoint(const ByteRange& out, const ByteRange& other) {
  if (ranges_overlap(out.begin, out.end, other.begin, other.end))
    throw bad(fmt::format("{} overlaps {}", out.name, other.name));
}

void check_v_in_k(const TensorView& k, const TensorView& v, int64_t head_dim_v) {
  if (v.data == k.data && v.batch_stride == k.batch_stride && v.seq_stride == k.seq_stride &&
      v.head_stride == k.head_stride)
    return;
  throw bad(fmt::format("layout v_in_k reads V as the first {} columns of K: v must be k's view "
                        "(data {}, strides batch {}, seq {}, head {}), got data {}, strides batch "
                        "{}, seq {}, head {}",
                        head_dim_v, k.data, k.batch_stride, k.seq_stride, k.head_stride, v.data,
                        v.batch_stride, v.seq_stride, v.head_stride));
}

ByteRange fp32_range(const char* name, const float* data, int64_t count) {
  const auto begin = reinterpret_cast<uintptr_t>(data);
  return {name, begin, begin + uintptr_t(count) * 4};
}

void check_pointer(const char* name, const void* data, int alignment) {
  if (data == nullptr) throw bad(fmt::format("{} is null", name));
  if (reinterpret_cast<uintptr_t>(data) % alignment != 0)
    throw bad(fmt::format("{} ({}) is not {}-byte aligned", name, data, alignment));
}

} // namespace attnjit::codegen

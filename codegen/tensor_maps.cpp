#include "codegen/tensor_maps.h"

#include <attnjit/error.h>

#include "codegen/tile_rules.h"
#include "runtime/driver.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstring>

namespace attnjit::codegen {

static const char* error_name(CUresult result) {
  const char* name = nullptr;
  runtime::driver().cuGetErrorName(result, &name);
  return name ? name : "unknown error";
}

static_assert(sizeof(CUtensorMap) == sizeof(TmaTensor::map) && alignof(TmaTensor) >= 64,
              "TmaTensor must hold a CUtensorMap");

// One [batch, seq, heads, dim] view as a 4-d tensor map with (64, rows) boxes, 128-byte
// swizzled as the kernels' SwizzledTile. Dimensions 1-3 go in ascending stride order. An axis
// of one index, or broadcast (stride 0), goes last as a dimension of size 1 that the kernel
// always addresses at 0 (its *_dim is 0: no dimension follows the axis). The sequence axis
// always stays in the map: boxes step along it; rows past its end arrive as zeros (loads) or are
// not written (stores).
static TmaTensor encode(const char* name, const TensorView& view, int64_t batch, int64_t seqlen,
                        int64_t heads, int64_t dim, int box_rows, DType dtype) {
  struct Axis {
    int64_t size, stride; // stride in elements
    int* slot;
    bool rows;
    bool last() const { return size <= 1 || stride == 0; }
    bool fixed() const { return !rows && last(); }
  };
  if (seqlen > 1 && view.seq_stride == 0)
    throw Error(ErrorKind::invalid_argument,
                fmt::format("{}: sequence stride 0 over {} rows cannot be addressed through a TMA "
                            "tensor map (warp_specialized); give the rows their own memory or "
                            "choose a config without warp_specialized",
                            name, seqlen));
  TmaTensor t{};
  std::array<Axis, 3> axes{Axis{seqlen, view.seq_stride, &t.seq_dim, true},
                           Axis{heads, view.head_stride, &t.head_dim, false},
                           Axis{batch, view.batch_stride, &t.batch_dim, false}};
  std::stable_sort(axes.begin(), axes.end(), [](const Axis& x, const Axis& y) {
    return x.last() != y.last() ? y.last() : x.stride < y.stride;
  });
  std::array<cuuint64_t, 4> dims{cuuint64_t(dim), 1, 1, 1};
  std::array<cuuint64_t, 3> strides{}; // bytes, of dimensions 1-3
  int64_t covered = dim;               // elements spanned by the dimensions placed so far
  for (int i = 0; i < 3; ++i) {
    const Axis& a = axes[i];
    const int64_t size = a.last() ? 1 : a.size;
    const int64_t stride = a.last() ? covered : a.stride;
    dims[i + 1] = cuuint64_t(size);
    strides[i] = cuuint64_t(stride * 2);
    covered = std::max(covered, stride * size);
    *a.slot = a.fixed() ? 0 : i + 1;
  }
  std::array<cuuint32_t, 4> box{64, 1, 1, 1};
  box[t.seq_dim] = cuuint32_t(box_rows);
  const std::array<cuuint32_t, 4> element_strides{1, 1, 1, 1};
  CUtensorMap map;
  const CUresult result = runtime::driver().cuTensorMapEncodeTiled(
      &map,
      dtype == DType::bf16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 4,
      const_cast<void*>(view.data), dims.data(), strides.data(), box.data(), element_strides.data(),
      CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
      CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (result != CUDA_SUCCESS)
    throw Error(ErrorKind::invalid_argument,
                fmt::format("{}: cuTensorMapEncodeTiled refused the view (data {}, strides "
                            "batch/seq/head {}/{}/{} elements, box 64 x {}): {}",
                            name, view.data, view.batch_stride, view.seq_stride, view.head_stride,
                            box_rows, error_name(result)));
  std::memcpy(t.map, &map, sizeof map);
  return t;
}

FwdTmaParams forward_tensor_maps(const AttentionProblem& problem, const TileConfig& config,
                                 const ForwardArgs& args) {
  const KernelSpec& s = problem.spec;
  const AttentionShape& sh = problem.shape;
  FwdTmaParams p{};
  // An empty tensor is never read (no query blocks, or no key blocks to visit), and TMA cannot
  // describe it: its map stays zero.
  if (sh.batch == 0 || sh.seqlen_q == 0) return p;
  p.q = encode("q", args.q, sh.batch, sh.seqlen_q, s.num_heads, s.head_dim_qk, config.block_m,
               s.dtype);
  // Where O is staged in Q's place, each computing warpgroup stores its 64 rows by TMA (with
  // no key, zeros); rows past Sq are not written.
  if (!forward_o_has_own_smem(s, config))
    p.o = encode("o", args.o, sh.batch, sh.seqlen_q, s.num_heads, s.head_dim_v, 64, s.dtype);
  if (sh.seqlen_k == 0) return p;
  p.k = encode("k", args.k, sh.batch, sh.seqlen_k, s.num_kv_heads, s.head_dim_qk, config.block_n,
               s.dtype);
  p.v = encode("v", args.v, sh.batch, sh.seqlen_k, s.num_kv_heads, s.head_dim_v, config.block_n,
               s.dtype);
  return p;
}

BwdTmaParams backward_tensor_maps(const AttentionProblem& problem, const TileConfig& config,
                                  const BackwardArgs& args) {
  const KernelSpec& s = problem.spec;
  const AttentionShape& sh = problem.shape;
  BwdTmaParams p{};
  // As the forward's: no query step or no key block, nothing is read.
  if (sh.batch == 0 || sh.seqlen_q == 0 || sh.seqlen_k == 0) return p;
  p.q = encode("q", args.q, sh.batch, sh.seqlen_q, s.num_heads, s.head_dim_qk, config.block_m,
               s.dtype);
  p.dout = encode("dout", args.dout, sh.batch, sh.seqlen_q, s.num_heads, s.head_dim_v,
                  config.block_m, s.dtype);
  p.k = encode("k", args.k, sh.batch, sh.seqlen_k, s.num_kv_heads, s.head_dim_qk, config.block_n,
               s.dtype);
  p.v = encode("v", args.v, sh.batch, sh.seqlen_k, s.num_kv_heads, s.head_dim_v, config.block_n,
               s.dtype);
  return p;
}

} // namespace attnjit::codegen

#include "tuner/reference.h"
#include "tuner/parallel_for.h"
#include "tuner/sample_indices.h"

#include <attnjit/error.h>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <exception>
#include <limits>
#include <mutex>
#include <numeric>
#include <random>
#include <thread>
#include <unordered_set>

namespace attnjit::tuner {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

uint16_t float_to_bf16(float value) {
  uint32_t x = std::bit_cast<uint32_t>(value);
  // Truncating a NaN's low mantissa bits could leave an infinity: force the quiet bit instead.
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x0040u);
  // Overflow past the largest finite value carries into the exponent and yields inf, as it must.
  x += 0x7fffu + ((x >> 16) & 1u);
  return static_cast<uint16_t>(x >> 16);
}

uint16_t float_to_fp16(float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t x = bits & 0x7fffffffu;
  if (x > 0x7f800000u) return sign | 0x7e00u;
  // 65520 is halfway between 65504 (odd mantissa) and 65536: ties-to-even goes to inf.
  if (x >= 0x477ff000u) return sign | 0x7c00u;
  if (x >= 0x38800000u) { // normal half (>= 2^-14): rebias the exponent, round off 13 bits
    const uint32_t rebiased = x - (112u << 23);
    return sign | static_cast<uint16_t>((rebiased + 0xfffu + ((rebiased >> 13) & 1u)) >> 13);
  }
  // Subnormal half: count units of 2^-24. A float of exponent e is mantissa * 2^(e - 126) units.
  const int shift = 126 - static_cast<int>(x >> 23);
  if (shift > 24) return sign; // below half a unit
  const uint32_t mantissa = (x & 0x7fffffu) | 0x800000u;
  uint32_t units = mantissa >> shift;
  const uint32_t rest = mantissa & ((1u << shift) - 1u), half = 1u << (shift - 1);
  if (rest > half || (rest == half && (units & 1u))) ++units;
  return sign | static_cast<uint16_t>(units);
}

float fp16_to_float(uint16_t h) {
  const uint32_t sign = (h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
  if (exponent == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
  if (exponent == 0) {
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  return std::bit_cast<float>(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

// Dot products with independent partial sums: a single chain is bound by add latency, and the
// reference is what GPU tests wait for. Products of floats are exact in double, so only the
// summation order differs from a straight loop.
double dot_fp64(const float* a, const float* b, int64_t n) {
  double sum[8] = {};
  int64_t d = 0;
  for (; d + 8 <= n; d += 8)
    for (int u = 0; u < 8; ++u)
      sum[u] += static_cast<double>(a[d + u]) * b[d + u];
  for (; d < n; ++d)
    sum[0] += static_cast<double>(a[d]) * b[d];
  return ((sum[0] + sum[1]) + (sum[2] + sum[3])) + ((sum[4] + sum[5]) + (sum[6] + sum[7]));
}

// fp32 accumulation in blocked order, as a tensor-core GEMM does it.
float dot_fp32(const float* a, const float* b, int64_t n) {
  float sum[8] = {};
  int64_t d = 0;
  for (; d + 8 <= n; d += 8)
    for (int u = 0; u < 8; ++u)
      sum[u] += a[d + u] * b[d + u];
  for (; d < n; ++d)
    sum[0] += a[d] * b[d];
  return ((sum[0] + sum[1]) + (sum[2] + sum[3])) + ((sum[4] + sum[5]) + (sum[6] + sum[7]));
}

// Where a row's data lives in the contiguous [B, S, heads, D] host tensors.
struct RowView {
  const float* q; // Dqk values
  const float* k; // key j at k + j * kv_stride
  const float* v; // key j at v + j * kv_stride_v
  int64_t kv_stride, kv_stride_v;
  int64_t visible_keys; // keys 0 .. visible_keys-1
};

RowView row_view(const HostAttentionData& data, const RowId& row) {
  const KernelSpec& spec = data.problem.spec;
  const AttentionShape& shape = data.problem.shape;
  const int64_t heads = spec.num_heads, kv_heads = spec.num_kv_heads;
  const int64_t dqk = spec.head_dim_qk, dv = spec.head_dim_v;
  if (row.batch < 0 || row.batch >= shape.batch || row.head < 0 || row.head >= heads ||
      row.query < 0 || row.query >= shape.seqlen_q)
    throw Error(ErrorKind::invalid_argument,
                fmt::format("row (b={}, h={}, q={}) is outside the problem", row.batch, row.head,
                            row.query));
  const int64_t kv_head = row.head / (heads / kv_heads);
  RowView view;
  view.q = data.q.data() + ((row.batch * shape.seqlen_q + row.query) * heads + row.head) * dqk;
  view.k = data.k.data() + (row.batch * shape.seqlen_k * kv_heads + kv_head) * dqk;
  view.v = data.v.data() + (row.batch * shape.seqlen_k * kv_heads + kv_head) * dv;
  view.kv_stride = kv_heads * dqk;
  view.kv_stride_v = kv_heads * dv;
  // Bottom-right alignment: the last query sees every key, whatever Sq and Sk are.
  view.visible_keys = shape.seqlen_k;
  if (spec.mask == Mask::causal)
    view.visible_keys =
        std::clamp<int64_t>(row.query + shape.seqlen_k - shape.seqlen_q + 1, 0, shape.seqlen_k);
  return view;
}

void check_sizes(const HostAttentionData& data) {
  const KernelSpec& spec = data.problem.spec;
  const AttentionShape& shape = data.problem.shape;
  if (spec.num_kv_heads <= 0 || spec.num_heads % spec.num_kv_heads != 0)
    throw Error(ErrorKind::invalid_argument, "num_heads must be a multiple of num_kv_heads");
  const auto expect = [](const std::vector<float>& t, int64_t n, const char* name) {
    if (static_cast<int64_t>(t.size()) != n)
      throw Error(
          ErrorKind::invalid_argument,
          fmt::format("host tensor {} has {} values, the problem needs {}", name, t.size(), n));
  };
  expect(data.q, shape.batch * shape.seqlen_q * spec.num_heads * spec.head_dim_qk, "q");
  expect(data.k, shape.batch * shape.seqlen_k * spec.num_kv_heads * spec.head_dim_qk, "k");
  expect(data.v, shape.batch * shape.seqlen_k * spec.num_kv_heads * spec.head_dim_v, "v");
}

// Rows that share a (batch, kv head) read the same K and V, so they are computed together in
// tiles: K and V stream through the cache once a tile instead of once a row (a 4096-key row of
// D = 128 reads 4 MiB of them). body(index into rows, their views) runs on all cores.
template <class Body>
void for_each_tile(const HostAttentionData& data, const std::vector<RowId>& rows,
                   const Body& body) {
  constexpr size_t kTileRows = 16;
  const int64_t kv_heads = data.problem.spec.num_kv_heads;
  const int64_t group = data.problem.spec.num_heads / kv_heads;
  const auto kv_of = [&](int64_t r) { return rows[r].batch * kv_heads + rows[r].head / group; };
  std::vector<int64_t> order(rows.size());
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return kv_of(a) < kv_of(b); });
  std::vector<size_t> starts;
  for (size_t i = 0; i < order.size(); ++i)
    if (starts.empty() || i - starts.back() == kTileRows || kv_of(order[i]) != kv_of(order[i - 1]))
      starts.push_back(i);
  starts.push_back(order.size());
  parallel_for(static_cast<int64_t>(starts.size()) - 1, 1, [&](int64_t begin, int64_t end) {
    std::vector<RowView> views;
    for (int64_t t = begin; t < end; ++t) {
      const std::span<const int64_t> index(order.data() + starts[t], starts[t + 1] - starts[t]);
      views.clear();
      for (int64_t r : index)
        views.push_back(row_view(data, rows[r]));
      body(index, std::span<const RowView>(views));
    }
  });
}

int64_t tile_keys(std::span<const RowView> tile) {
  int64_t keys = 0;
  for (const RowView& row : tile)
    keys = std::max(keys, row.visible_keys);
  return keys;
}

ForwardRows empty_result(const HostAttentionData& data, const std::vector<RowId>& rows) {
  check_sizes(data);
  ForwardRows out;
  out.rows = rows;
  out.o.assign(rows.size() * data.problem.spec.head_dim_v, 0.0);
  out.lse.assign(rows.size(), kNegInf);
  return out;
}

} // namespace

uint16_t to_bits(float value, DType dtype) {
  return dtype == DType::bf16 ? float_to_bf16(value) : float_to_fp16(value);
}

float from_bits(uint16_t bits, DType dtype) {
  return dtype == DType::bf16 ? std::bit_cast<float>(static_cast<uint32_t>(bits) << 16)
                              : fp16_to_float(bits);
}

int64_t count_nan(std::span<const uint16_t> values, DType dtype) {
  // On the bits: an all-ones exponent and a nonzero mantissa, a loop the compiler vectorizes.
  const uint16_t infinity = dtype == DType::bf16 ? 0x7f80 : 0x7c00;
  std::atomic<int64_t> total{0};
  parallel_for(static_cast<int64_t>(values.size()), 1 << 22, [&](int64_t begin, int64_t end) {
    int64_t n = 0;
    for (int64_t i = begin; i < end; ++i)
      n += uint16_t(values[size_t(i)] & 0x7fff) > infinity;
    total += n;
  });
  return total.load();
}

std::vector<uint16_t> to_bits(std::span<const float> values, DType dtype) {
  std::vector<uint16_t> bits(values.size());
  parallel_for(static_cast<int64_t>(values.size()), 1 << 20, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      bits[i] = to_bits(values[i], dtype);
  });
  return bits;
}

HostAttentionData random_inputs(const AttentionProblem& problem, uint64_t seed) {
  const KernelSpec& spec = problem.spec;
  const AttentionShape& shape = problem.shape;
  HostAttentionData data;
  data.problem = problem;
  data.q.resize(shape.batch * shape.seqlen_q * spec.num_heads * spec.head_dim_qk);
  data.k.resize(shape.batch * shape.seqlen_k * spec.num_kv_heads * spec.head_dim_qk);
  data.v.resize(shape.batch * shape.seqlen_k * spec.num_kv_heads * spec.head_dim_v);
  // One engine per (tensor, chunk), seeded from (seed, tensor, chunk), so the values depend on
  // the seed alone and not on the thread count: the big-batch test fills 230M values.
  constexpr int64_t chunk = 1 << 18;
  int tensor_id = 0;
  for (std::vector<float>* tensor : {&data.q, &data.k, &data.v}) {
    const int64_t n = static_cast<int64_t>(tensor->size());
    const int id = tensor_id++;
    parallel_for(n, chunk, [&](int64_t begin, int64_t end) {
      std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32),
                        static_cast<uint32_t>(id), static_cast<uint32_t>(begin / chunk)};
      std::mt19937_64 engine(seq);
      std::normal_distribution<float> normal(0.0f, 1.0f);
      for (int64_t i = begin; i < end; ++i) {
        float x;
        do { // an exact zero would hide indexing bugs that read zeros
          x = round_to(normal(engine), spec.dtype);
        } while (x == 0.0f);
        (*tensor)[i] = x;
      }
    });
  }
  // Layout::v_in_k: V is K's first Dv columns; the references read v, so it holds them.
  if (spec.layout == Layout::v_in_k)
    for (size_t row = 0; row < data.v.size() / spec.head_dim_v; ++row)
      std::copy_n(&data.k[row * spec.head_dim_qk], spec.head_dim_v, &data.v[row * spec.head_dim_v]);
  return data;
}

std::vector<RowId> all_rows(const AttentionProblem& problem) {
  std::vector<RowId> rows;
  rows.reserve(problem.shape.batch * problem.spec.num_heads * problem.shape.seqlen_q);
  for (int64_t b = 0; b < problem.shape.batch; ++b)
    for (int64_t h = 0; h < problem.spec.num_heads; ++h)
      for (int64_t i = 0; i < problem.shape.seqlen_q; ++i)
        rows.push_back({b, h, i});
  return rows;
}

std::vector<RowId> sample_rows(const AttentionProblem& problem, int64_t count, uint64_t seed) {
  const int64_t heads = problem.spec.num_heads, sq = problem.shape.seqlen_q;
  const int64_t total = problem.shape.batch * heads * sq;
  if (count >= total) return all_rows(problem);
  if (count <= 0) return {};
  // Rows as linear indices (b * H + h) * Sq + i, so a set can keep them distinct.
  const int64_t last_bh = problem.shape.batch * heads - 1;
  std::mt19937_64 engine(seed);
  const std::vector<int64_t> picked =
      sample_indices(total, count, {int64_t{0}, sq - 1, last_bh * sq, total - 1}, engine);
  std::vector<RowId> rows;
  rows.reserve(picked.size());
  for (int64_t index : picked)
    rows.push_back({index / (heads * sq), index / sq % heads, index % sq});
  return rows;
}

ForwardRows reference_forward(const HostAttentionData& data, const std::vector<RowId>& rows) {
  ForwardRows out = empty_result(data, rows);
  const int64_t dqk = data.problem.spec.head_dim_qk, dv = data.problem.spec.head_dim_v;
  const double scale = effective_softmax_scale(data.problem);
  for_each_tile(data, rows, [&](std::span<const int64_t> index, std::span<const RowView> tile) {
    const int64_t keys = tile_keys(tile);
    std::vector<double> p(tile.size() * keys), max_score(tile.size(), kNegInf),
        sum(tile.size(), 0.0);
    for (int64_t j = 0; j < keys; ++j) {
      const float* k = tile[0].k + j * tile[0].kv_stride;
      for (size_t t = 0; t < tile.size(); ++t)
        if (j < tile[t].visible_keys) {
          const double score = dot_fp64(tile[t].q, k, dqk) * scale;
          p[t * keys + j] = score;
          max_score[t] = std::max(max_score[t], score);
        }
    }
    for (size_t t = 0; t < tile.size(); ++t)
      for (int64_t j = 0; j < tile[t].visible_keys; ++j)
        sum[t] += p[t * keys + j] = std::exp(p[t * keys + j] - max_score[t]);
    for (int64_t j = 0; j < keys; ++j) {
      const float* v = tile[0].v + j * tile[0].kv_stride_v;
      for (size_t t = 0; t < tile.size(); ++t)
        if (j < tile[t].visible_keys) {
          double* o = out.o.data() + index[t] * dv;
          for (int64_t d = 0; d < dv; ++d)
            o[d] += p[t * keys + j] * v[d];
        }
    }
    for (size_t t = 0; t < tile.size(); ++t) {
      if (tile[t].visible_keys == 0) continue; // stays O = 0, lse = -inf
      for (int64_t d = 0; d < dv; ++d)
        out.o[index[t] * dv + d] /= sum[t];
      out.lse[index[t]] = max_score[t] + std::log(sum[t]);
    }
  });
  return out;
}

ForwardRows plain_forward(const HostAttentionData& data, const std::vector<RowId>& rows) {
  ForwardRows out = empty_result(data, rows);
  const DType dtype = data.problem.spec.dtype;
  const int64_t dqk = data.problem.spec.head_dim_qk, dv = data.problem.spec.head_dim_v;
  const float scale = effective_softmax_scale(data.problem);
  for_each_tile(data, rows, [&](std::span<const int64_t> index, std::span<const RowView> tile) {
    const int64_t keys = tile_keys(tile);
    constexpr float kFloatNegInf = -std::numeric_limits<float>::infinity();
    std::vector<float> p(tile.size() * keys), max_score(tile.size(), kFloatNegInf),
        sum(tile.size(), 0.0f), acc(tile.size() * dv, 0.0f);
    // Each step materializes a tensor in the dtype, as torch.matmul / mul / softmax do.
    for (int64_t j = 0; j < keys; ++j) {
      const float* k = tile[0].k + j * tile[0].kv_stride;
      for (size_t t = 0; t < tile.size(); ++t)
        if (j < tile[t].visible_keys) {
          const float score = round_to(round_to(dot_fp32(tile[t].q, k, dqk), dtype) * scale, dtype);
          p[t * keys + j] = score;
          max_score[t] = std::max(max_score[t], score);
        }
    }
    for (size_t t = 0; t < tile.size(); ++t) {
      for (int64_t j = 0; j < tile[t].visible_keys; ++j)
        sum[t] += p[t * keys + j] = std::exp(p[t * keys + j] - max_score[t]);
      for (int64_t j = 0; j < tile[t].visible_keys; ++j)
        p[t * keys + j] = round_to(p[t * keys + j] / sum[t], dtype);
    }
    for (int64_t j = 0; j < keys; ++j) {
      const float* v = tile[0].v + j * tile[0].kv_stride_v;
      for (size_t t = 0; t < tile.size(); ++t)
        if (j < tile[t].visible_keys)
          for (int64_t d = 0; d < dv; ++d)
            acc[t * dv + d] += p[t * keys + j] * v[d];
    }
    for (size_t t = 0; t < tile.size(); ++t) {
      if (tile[t].visible_keys == 0) continue;
      for (int64_t d = 0; d < dv; ++d)
        out.o[index[t] * dv + d] = round_to(acc[t * dv + d], dtype);
      out.lse[index[t]] = max_score[t] + std::log(sum[t]);
    }
  });
  return out;
}

Comparison compare_forward(const ForwardRows& reference, const ForwardRows& plain,
                           const ForwardRows& kernel, double error_factor, double abs_floor,
                           double lse_tolerance) {
  const size_t n = reference.rows.size();
  const size_t dv = n ? reference.o.size() / n : 0;
  for (const ForwardRows* r : {&reference, &plain, &kernel})
    if (r->rows.size() != n || r->o.size() != n * dv || r->lse.size() != n)
      throw Error(ErrorKind::invalid_argument,
                  fmt::format("compare_forward: results of {} rows x {} values and {} lse, "
                              "the reference has {} x {} and {}",
                              r->rows.size(), n ? r->o.size() / n : 0, r->lse.size(), n, dv, n));
  Comparison c;
  c.lse_tolerance = lse_tolerance;
  size_t worst = 0; // element of the largest kernel error, for the summary
  for (size_t r = 0; r < n; ++r) {
    const double ref_lse = reference.lse[r], lse = kernel.lse[r];
    const bool empty_row = ref_lse == kNegInf;
    bool row_bad = empty_row && lse != kNegInf;
    if (std::isnan(lse) && !std::isnan(ref_lse)) ++c.nan_mismatches;
    if (!empty_row && !std::isnan(lse)) {
      const double error = std::abs(lse - ref_lse) / std::max(1.0, std::abs(ref_lse));
      c.max_lse_error = std::max(c.max_lse_error, std::isnan(error) ? INFINITY : error);
    }
    for (size_t i = r * dv; i < (r + 1) * dv; ++i) {
      const double ref = reference.o[i], value = kernel.o[i];
      c.plain_max_abs_error = std::max(c.plain_max_abs_error, std::abs(plain.o[i] - ref));
      if (std::isnan(value)) {
        if (!std::isnan(ref)) ++c.nan_mismatches;
        continue;
      }
      if (empty_row && value != 0.0) row_bad = true;
      if (const double error = std::abs(value - ref); error > c.max_abs_error)
        c.max_abs_error = error, worst = i;
    }
    c.empty_row_mismatches += row_bad;
  }
  c.tolerance = error_factor * c.plain_max_abs_error + abs_floor;
  c.passed = c.max_abs_error <= c.tolerance && c.max_lse_error <= lse_tolerance &&
             c.nan_mismatches == 0 && c.empty_row_mismatches == 0;
  std::string where = "-";
  if (n && dv) {
    const RowId& row = reference.rows[worst / dv];
    where = fmt::format("(b={}, h={}, q={}, d={}: {:.6g} vs {:.6g})", row.batch, row.head,
                        row.query, worst % dv, kernel.o[worst], reference.o[worst]);
  }
  c.summary =
      fmt::format("{}: max |O - ref| {:.3g} (tolerance {:.3g} = {} x plain {:.3g} + {:.3g}) "
                  "at {}; lse error {:.3g} (tolerance {:.3g}); NaN {}; empty-row "
                  "mismatches {}; {} rows",
                  c.passed ? "ok" : "FAIL", c.max_abs_error, c.tolerance, error_factor,
                  c.plain_max_abs_error, abs_floor, where, c.max_lse_error, lse_tolerance,
                  c.nan_mismatches, c.empty_row_mismatches, n);
  return c;
}

} // namespace attnjit::tuner

#include "tuner/reference_backward.h"
#include "tuner/parallel_for.h"
#include "tuner/sample_indices.h"

#include <attnjit/error.h>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <limits>
#include <map>
#include <mutex>
#include <numeric>
#include <random>
#include <span>
#include <thread>
#include <type_traits>
#include <unordered_set>

namespace attnjit::tuner {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// Dot products with independent partial sums (a single chain is bound by add latency). Products
// of floats are exact in double, so the fp64 version differs from a straight loop only in order.
template <class Acc, class A, class B> Acc dot(const A* a, const B* b, int64_t n) {
  Acc sum[8] = {};
  int64_t d = 0;
  for (; d + 8 <= n; d += 8)
    for (int u = 0; u < 8; ++u)
      sum[u] += static_cast<Acc>(a[d + u]) * static_cast<Acc>(b[d + u]);
  for (; d < n; ++d)
    sum[0] += static_cast<Acc>(a[d]) * static_cast<Acc>(b[d]);
  return ((sum[0] + sum[1]) + (sum[2] + sum[3])) + ((sum[4] + sum[5]) + (sum[6] + sum[7]));
}

// Where things live in the contiguous [B, S, heads, D] host tensors, and who sees whom.
struct Dims {
  int64_t batch, sq, sk, heads, kv_heads, group, dqk, dv;
  bool causal;

  explicit Dims(const AttentionProblem& p)
      : batch(p.shape.batch), sq(p.shape.seqlen_q), sk(p.shape.seqlen_k), heads(p.spec.num_heads),
        kv_heads(p.spec.num_kv_heads), group(p.spec.num_heads / p.spec.num_kv_heads),
        dqk(p.spec.head_dim_qk), dv(p.spec.head_dim_v), causal(p.spec.mask == Mask::causal) {}

  int64_t q_offset(int64_t b, int64_t h, int64_t i) const {
    return ((b * sq + i) * heads + h) * dqk;
  }
  int64_t do_offset(int64_t b, int64_t h, int64_t i) const {
    return ((b * sq + i) * heads + h) * dv;
  }
  int64_t k_offset(int64_t b, int64_t kv, int64_t j) const {
    return ((b * sk + j) * kv_heads + kv) * dqk;
  }
  int64_t v_offset(int64_t b, int64_t kv, int64_t j) const {
    return ((b * sk + j) * kv_heads + kv) * dv;
  }
  // Bottom-right alignment: query i sees key j iff j <= i + Sk - Sq.
  int64_t visible_keys(int64_t i) const {
    return causal ? std::clamp<int64_t>(i + sk - sq + 1, 0, sk) : sk;
  }
  int64_t first_query(int64_t j) const { return causal ? std::max<int64_t>(0, j - (sk - sq)) : 0; }
  bool sees(int64_t i, int64_t j) const { return !causal || j <= i + sk - sq; }
};

void check_inputs(const HostBackwardData& data) {
  const KernelSpec& spec = data.inputs.problem.spec;
  if (spec.num_kv_heads <= 0 || spec.num_heads % spec.num_kv_heads != 0)
    throw Error(ErrorKind::invalid_argument, "num_heads must be a multiple of num_kv_heads");
  const AttentionShape& shape = data.inputs.problem.shape;
  const int64_t expect = shape.batch * shape.seqlen_q * spec.num_heads * spec.head_dim_v;
  if (static_cast<int64_t>(data.dout.size()) != expect)
    throw Error(ErrorKind::invalid_argument,
                fmt::format("host tensor dout has {} values, the problem needs {}",
                            data.dout.size(), expect));
}

void check_keys(const Dims& dims, const std::vector<KeyId>& keys) {
  for (const KeyId& key : keys)
    if (key.batch < 0 || key.batch >= dims.batch || key.kv_head < 0 ||
        key.kv_head >= dims.kv_heads || key.key < 0 || key.key >= dims.sk)
      throw Error(ErrorKind::invalid_argument,
                  fmt::format("key (b={}, kv={}, k={}) is outside the problem", key.batch,
                              key.kv_head, key.key));
}

// The two precisions as one set of steps, so the reference and the plain version cannot drift
// apart in anything but rounding.
template <bool kPlain> struct Math {
  using Acc = std::conditional_t<kPlain, float, double>;
  DType dtype;
  Acc scale;

  Acc round(Acc x) const {
    if constexpr (kPlain)
      return round_to(x, dtype);
    else
      return x;
  }
  // Each plain step materializes a tensor in the dtype, as torch.matmul / mul / softmax do.
  Acc score(const float* q, const float* k, int64_t n) const {
    return round(round(dot<Acc>(q, k, n)) * scale);
  }
  Acc prob(Acc score, Acc lse) const { return round(std::exp(score - lse)); }
  Acc dprob(const float* d_o, const float* v, int64_t n) const {
    return round(dot<Acc>(d_o, v, n));
  }
  Acc dscore(Acc p, Acc dp, Acc dsum) const { return round(p * (dp - dsum)); }
  double finish(Acc acc, bool scaled) const { return round(scaled ? acc * scale : acc); }
};

// LSE and D = rowsum(dO * O) of chosen rows, from the matching forward (fp64 or plain).
struct RowStats {
  std::vector<double> lse, dsum;
};

template <bool kPlain>
RowStats row_stats(const HostBackwardData& data, const std::vector<RowId>& rows) {
  const Dims dims(data.inputs.problem);
  const ForwardRows forward =
      kPlain ? plain_forward(data.inputs, rows) : reference_forward(data.inputs, rows);
  RowStats stats{forward.lse, std::vector<double>(rows.size(), 0.0)};
  parallel_for(static_cast<int64_t>(rows.size()), 256, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const RowId& row = rows[r];
      const float* d_o = data.dout.data() + dims.do_offset(row.batch, row.head, row.query);
      const double* o = forward.o.data() + r * dims.dv;
      // The plain O is the dtype's rounding, exact as a float; its D sums in fp32.
      stats.dsum[r] =
          kPlain ? static_cast<double>(dot<float>(d_o, o, dims.dv)) : dot<double>(d_o, o, dims.dv);
    }
  });
  return stats;
}

// Tiles of up to 16 indices into `items` sharing one (batch, KV head), in `order`: each tile
// reads that pair's K and V (or Q and dO) once for all of its members.
template <class Item, class GroupOf>
std::vector<std::vector<int64_t>> tiles_by_group(const std::vector<Item>& items,
                                                 const GroupOf& group_of) {
  constexpr size_t kTile = 16;
  std::vector<int64_t> order(items.size());
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return group_of(a) < group_of(b); });
  std::vector<std::vector<int64_t>> tiles;
  for (size_t i = 0; i < order.size(); ++i) {
    if (tiles.empty() || tiles.back().size() == kTile ||
        group_of(order[i]) != group_of(tiles.back().front()))
      tiles.emplace_back();
    tiles.back().push_back(order[i]);
  }
  return tiles;
}

template <bool kPlain>
void compute_dq(const HostBackwardData& data, const Math<kPlain>& math, BackwardRows& out) {
  using Acc = typename Math<kPlain>::Acc;
  const Dims dims(data.inputs.problem);
  const std::vector<RowId>& rows = out.rows;
  const RowStats stats = row_stats<kPlain>(data, rows);
  const auto tiles = tiles_by_group(rows, [&](int64_t r) {
    return std::pair{rows[r].batch, rows[r].head / dims.group};
  });
  parallel_for(static_cast<int64_t>(tiles.size()), 1, [&](int64_t begin, int64_t end) {
    std::vector<Acc> acc;
    for (int64_t t = begin; t < end; ++t) {
      const std::vector<int64_t>& tile = tiles[t];
      const int64_t b = rows[tile[0]].batch, kv = rows[tile[0]].head / dims.group;
      acc.assign(tile.size() * dims.dqk, Acc(0));
      int64_t keys = 0;
      for (int64_t r : tile)
        keys = std::max(keys, dims.visible_keys(rows[r].query));
      for (int64_t j = 0; j < keys; ++j) {
        const float* k = data.inputs.k.data() + dims.k_offset(b, kv, j);
        const float* v = data.inputs.v.data() + dims.v_offset(b, kv, j);
        for (size_t m = 0; m < tile.size(); ++m) {
          const int64_t r = tile[m];
          const RowId& row = rows[r];
          if (j >= dims.visible_keys(row.query)) continue;
          const float* q = data.inputs.q.data() + dims.q_offset(b, row.head, row.query);
          const float* d_o = data.dout.data() + dims.do_offset(b, row.head, row.query);
          const Acc p = math.prob(math.score(q, k, dims.dqk), static_cast<Acc>(stats.lse[r]));
          const Acc ds =
              math.dscore(p, math.dprob(d_o, v, dims.dv), static_cast<Acc>(stats.dsum[r]));
          Acc* a = acc.data() + m * dims.dqk;
          for (int64_t d = 0; d < dims.dqk; ++d)
            a[d] += ds * static_cast<Acc>(k[d]);
        }
      }
      for (size_t m = 0; m < tile.size(); ++m)
        for (int64_t d = 0; d < dims.dqk; ++d)
          out.dq[tile[m] * dims.dqk + d] = math.finish(acc[m * dims.dqk + d], true);
    }
  });
}

template <bool kPlain>
void compute_dkdv(const HostBackwardData& data, const Math<kPlain>& math, BackwardRows& out) {
  using Acc = typename Math<kPlain>::Acc;
  const Dims dims(data.inputs.problem);
  const std::vector<KeyId>& keys = out.keys;
  check_keys(dims, keys);
  const auto group_of = [&](int64_t k) { return std::pair{keys[k].batch, keys[k].kv_head}; };

  // Every query of every head of each (batch, KV head) that a key belongs to: one forward.
  std::map<std::pair<int64_t, int64_t>, int64_t> group_base; // -> first index in stat_rows
  std::vector<RowId> stat_rows;
  for (size_t k = 0; k < keys.size(); ++k)
    if (group_base.emplace(group_of(k), static_cast<int64_t>(stat_rows.size())).second)
      for (int64_t h = keys[k].kv_head * dims.group; h < (keys[k].kv_head + 1) * dims.group; ++h)
        for (int64_t i = 0; i < dims.sq; ++i)
          stat_rows.push_back({keys[k].batch, h, i});
  const RowStats stats = row_stats<kPlain>(data, stat_rows);

  // Within a tile, keys in order, so the first one bounds where the causal queries start.
  auto tiles = tiles_by_group(keys, group_of);
  for (auto& tile : tiles)
    std::sort(tile.begin(), tile.end(),
              [&](int64_t a, int64_t b) { return keys[a].key < keys[b].key; });
  parallel_for(static_cast<int64_t>(tiles.size()), 1, [&](int64_t begin, int64_t end) {
    std::vector<Acc> dk, dv;
    for (int64_t t = begin; t < end; ++t) {
      const std::vector<int64_t>& tile = tiles[t];
      const int64_t b = keys[tile[0]].batch, kv = keys[tile[0]].kv_head;
      const int64_t base = group_base.at(group_of(tile[0]));
      dk.assign(tile.size() * dims.dqk, Acc(0));
      dv.assign(tile.size() * dims.dv, Acc(0));
      for (int64_t g = 0; g < dims.group; ++g) {
        const int64_t h = kv * dims.group + g;
        for (int64_t i = dims.first_query(keys[tile[0]].key); i < dims.sq; ++i) {
          const int64_t s = base + g * dims.sq + i;
          if (stats.lse[s] == kNegInf) continue; // sees no key: P = 0
          const float* q = data.inputs.q.data() + dims.q_offset(b, h, i);
          const float* d_o = data.dout.data() + dims.do_offset(b, h, i);
          for (size_t m = 0; m < tile.size(); ++m) {
            const int64_t j = keys[tile[m]].key;
            if (!dims.sees(i, j)) break; // later keys of the tile are masked too
            const float* k = data.inputs.k.data() + dims.k_offset(b, kv, j);
            const float* v = data.inputs.v.data() + dims.v_offset(b, kv, j);
            const Acc p = math.prob(math.score(q, k, dims.dqk), static_cast<Acc>(stats.lse[s]));
            const Acc ds =
                math.dscore(p, math.dprob(d_o, v, dims.dv), static_cast<Acc>(stats.dsum[s]));
            Acc* a = dk.data() + m * dims.dqk;
            for (int64_t d = 0; d < dims.dqk; ++d)
              a[d] += ds * static_cast<Acc>(q[d]);
            a = dv.data() + m * dims.dv;
            for (int64_t d = 0; d < dims.dv; ++d)
              a[d] += p * static_cast<Acc>(d_o[d]);
          }
        }
      }
      for (size_t m = 0; m < tile.size(); ++m) {
        for (int64_t d = 0; d < dims.dqk; ++d)
          out.dk[tile[m] * dims.dqk + d] = math.finish(dk[m * dims.dqk + d], true);
        for (int64_t d = 0; d < dims.dv; ++d)
          out.dv[tile[m] * dims.dv + d] = math.finish(dv[m * dims.dv + d], false);
      }
    }
  });
}

template <bool kPlain>
BackwardRows backward(const HostBackwardData& data, const std::vector<RowId>& rows,
                      const std::vector<KeyId>& keys) {
  check_inputs(data);
  const AttentionProblem& problem = data.inputs.problem;
  const Dims dims(problem);
  BackwardRows out;
  out.rows = rows;
  out.keys = keys;
  out.dq.assign(rows.size() * dims.dqk, 0.0);
  out.dk.assign(keys.size() * dims.dqk, 0.0);
  out.dv.assign(keys.size() * dims.dv, 0.0);
  out.row_seen.resize(rows.size());
  for (size_t r = 0; r < rows.size(); ++r)
    out.row_seen[r] = dims.visible_keys(rows[r].query) > 0;
  const Math<kPlain> math{problem.spec.dtype, static_cast<typename Math<kPlain>::Acc>(
                                                  effective_softmax_scale(problem))};
  compute_dq(data, math, out);
  compute_dkdv(data, math, out);
  return out;
}

// The largest |kernel - reference| of one gradient, and the plain error beside it.
GradientError compare_gradient(const std::vector<double>& reference,
                               const std::vector<double>& plain, const std::vector<double>& kernel,
                               size_t width, double error_factor, double abs_floor,
                               const auto& where) {
  GradientError e;
  size_t worst = 0;
  for (size_t i = 0; i < reference.size(); ++i) {
    const double ref = reference[i], value = kernel[i];
    e.plain_max_abs_error = std::max(e.plain_max_abs_error, std::abs(plain[i] - ref));
    if (std::isnan(value)) {
      if (!std::isnan(ref)) ++e.nan_mismatches;
      continue;
    }
    if (const double error = std::abs(value - ref); error > e.max_abs_error)
      e.max_abs_error = error, worst = i;
  }
  e.tolerance = error_factor * e.plain_max_abs_error + abs_floor;
  e.worst = reference.empty() ? std::string("-")
                              : fmt::format("({}, d={}: {:.6g} vs {:.6g})", where(worst / width),
                                            worst % width, kernel[worst], reference[worst]);
  return e;
}

bool within(const GradientError& e) {
  return e.max_abs_error <= e.tolerance && e.nan_mismatches == 0;
}

std::string describe(const char* name, const GradientError& e, double error_factor,
                     double abs_floor) {
  return fmt::format("{} {:.3g} (tol {:.3g} = {} x plain {:.3g} + {:.3g}) at {}, NaN {}", name,
                     e.max_abs_error, e.tolerance, error_factor, e.plain_max_abs_error, abs_floor,
                     e.worst, e.nan_mismatches);
}

} // namespace

HostBackwardData random_backward_inputs(const AttentionProblem& problem, uint64_t seed) {
  HostBackwardData data;
  data.inputs = random_inputs(problem, seed);
  const KernelSpec& spec = problem.spec;
  const AttentionShape& shape = problem.shape;
  data.dout.resize(shape.batch * shape.seqlen_q * spec.num_heads * spec.head_dim_v);
  // random_inputs seeds its engines with (seed, tensor 0..2, chunk); dO is tensor 3 of that
  // scheme, so it is independent of q, k and v and of the thread count.
  constexpr int64_t chunk = 1 << 18;
  constexpr uint32_t kDoutTensor = 3;
  parallel_for(static_cast<int64_t>(data.dout.size()), chunk, [&](int64_t begin, int64_t end) {
    std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), kDoutTensor,
                      static_cast<uint32_t>(begin / chunk)};
    std::mt19937_64 engine(seq);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (int64_t i = begin; i < end; ++i) {
      float x;
      do { // an exact zero would hide indexing bugs that read zeros
        x = round_to(normal(engine), spec.dtype);
      } while (x == 0.0f);
      data.dout[i] = x;
    }
  });
  return data;
}

std::vector<KeyId> all_keys(const AttentionProblem& problem) {
  std::vector<KeyId> keys;
  keys.reserve(problem.shape.batch * problem.spec.num_kv_heads * problem.shape.seqlen_k);
  for (int64_t b = 0; b < problem.shape.batch; ++b)
    for (int64_t kv = 0; kv < problem.spec.num_kv_heads; ++kv)
      for (int64_t j = 0; j < problem.shape.seqlen_k; ++j)
        keys.push_back({b, kv, j});
  return keys;
}

std::vector<KeyId> sample_keys(const AttentionProblem& problem, int64_t count, uint64_t seed,
                               int64_t max_groups) {
  const int64_t kv_heads = problem.spec.num_kv_heads, sk = problem.shape.seqlen_k;
  const int64_t groups = problem.shape.batch * kv_heads;
  if (sk == 0 || count <= 0) return {};
  std::mt19937_64 engine(seed);
  // The (batch, KV head) pairs to draw from, as linear indices b * KV + kv.
  std::vector<int64_t> chosen;
  if (max_groups <= 0 || max_groups >= groups) {
    chosen.resize(groups);
    std::iota(chosen.begin(), chosen.end(), int64_t{0});
  } else {
    std::unordered_set<int64_t> seen{0, groups - 1};
    chosen = {0};
    if (groups > 1 && max_groups > 1) chosen.push_back(groups - 1);
    std::uniform_int_distribution<int64_t> uniform(0, groups - 1);
    while (static_cast<int64_t>(chosen.size()) < max_groups)
      if (int64_t g = uniform(engine); seen.insert(g).second) chosen.push_back(g);
    std::sort(chosen.begin(), chosen.end());
  }
  // Keys as indices into chosen x Sk.
  const int64_t total = static_cast<int64_t>(chosen.size()) * sk;
  const std::vector<int64_t> picked =
      sample_indices(total, count, {int64_t{0}, sk - 1, total - sk, total - 1}, engine);
  std::vector<KeyId> keys;
  keys.reserve(picked.size());
  for (int64_t index : picked) {
    const int64_t group = chosen[index / sk];
    keys.push_back({group / kv_heads, group % kv_heads, index % sk});
  }
  return keys;
}

BackwardRows reference_backward(const HostBackwardData& data, const std::vector<RowId>& rows,
                                const std::vector<KeyId>& keys) {
  return backward<false>(data, rows, keys);
}

BackwardRows plain_backward(const HostBackwardData& data, const std::vector<RowId>& rows,
                            const std::vector<KeyId>& keys) {
  return backward<true>(data, rows, keys);
}

BackwardComparison compare_backward(const BackwardRows& reference, const BackwardRows& plain,
                                    const BackwardRows& kernel, double error_factor,
                                    double abs_floor) {
  const size_t rows = reference.rows.size(), keys = reference.keys.size();
  const size_t dqk = rows ? reference.dq.size() / rows : keys ? reference.dk.size() / keys : 0;
  const size_t dv = keys ? reference.dv.size() / keys : 0;
  for (const BackwardRows* r : {&reference, &plain, &kernel})
    if (r->rows.size() != rows || r->keys.size() != keys || r->dq.size() != rows * dqk ||
        r->dk.size() != keys * dqk || r->dv.size() != keys * dv)
      throw Error(ErrorKind::invalid_argument,
                  fmt::format("compare_backward: {} rows and {} keys with {} dQ, {} dK and {} dV "
                              "values; the reference has {} and {} with {}, {} and {}",
                              r->rows.size(), r->keys.size(), r->dq.size(), r->dk.size(),
                              r->dv.size(), rows, keys, rows * dqk, keys * dqk, keys * dv));
  if (reference.row_seen.size() != rows)
    throw Error(ErrorKind::invalid_argument,
                "compare_backward: the reference does not say which rows see a key");

  const auto row_at = [&](size_t r) {
    const RowId& row = reference.rows[r];
    return fmt::format("b={}, h={}, q={}", row.batch, row.head, row.query);
  };
  const auto key_at = [&](size_t k) {
    const KeyId& key = reference.keys[k];
    return fmt::format("b={}, kv={}, k={}", key.batch, key.kv_head, key.key);
  };
  BackwardComparison c;
  c.dq = compare_gradient(reference.dq, plain.dq, kernel.dq, dqk, error_factor, abs_floor, row_at);
  c.dk = compare_gradient(reference.dk, plain.dk, kernel.dk, dqk, error_factor, abs_floor, key_at);
  c.dv = compare_gradient(reference.dv, plain.dv, kernel.dv, dv, error_factor, abs_floor, key_at);
  // A row that sees no key has P = 0: anything but an exact 0 (NaN included) means the kernel
  // divided by an empty softmax sum or read a stale accumulator.
  for (size_t r = 0; r < rows; ++r)
    if (!reference.row_seen[r])
      c.empty_row_mismatches +=
          std::any_of(kernel.dq.begin() + r * dqk, kernel.dq.begin() + (r + 1) * dqk,
                      [](double x) { return x != 0.0; });
  c.passed = within(c.dq) && within(c.dk) && within(c.dv) && c.empty_row_mismatches == 0;
  c.summary = fmt::format(
      "{}: {}; {}; {}; empty-row mismatches {}; {} rows, {} keys", c.passed ? "ok" : "FAIL",
      describe("dQ", c.dq, error_factor, abs_floor), describe("dK", c.dk, error_factor, abs_floor),
      describe("dV", c.dv, error_factor, abs_floor), c.empty_row_mismatches, rows, keys);
  return c;
}

} // namespace attnjit::tuner

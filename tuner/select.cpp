#include "tuner/select.h"

#include <attnjit/error.h>

#include <algorithm>
#include <numeric>
#include <tuple>

namespace attnjit::tuner {

bool config_less(const TileConfig& a, const TileConfig& b) {
  return std::tie(a.block_m, a.block_n, a.num_warps, a.num_stages, a.q_in_registers, a.wgmma,
                  a.warp_specialized) < std::tie(b.block_m, b.block_n, b.num_warps, b.num_stages,
                                                 b.q_in_registers, b.wgmma, b.warp_specialized);
}

bool preferred(const Timed& a, const Timed& b) {
  if (a.threads != b.threads) return a.threads < b.threads;
  if (a.smem_bytes != b.smem_bytes) return a.smem_bytes < b.smem_bytes;
  return config_less(a.config, b.config);
}

namespace {

// Timed candidates, fastest first; equal times in config order, so the order is total.
std::vector<size_t> by_speed(std::span<const Timed> timed) {
  std::vector<size_t> order;
  for (size_t i = 0; i < timed.size(); ++i)
    if (timed[i].median_ms > 0) order.push_back(i);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (timed[a].median_ms != timed[b].median_ms) return timed[a].median_ms < timed[b].median_ms;
    return config_less(timed[a].config, timed[b].config);
  });
  return order;
}

} // namespace

std::vector<size_t> finalists(std::span<const Timed> timed, const SelectionRules& rules,
                              std::optional<size_t> always) {
  const std::vector<size_t> order = by_speed(timed);
  std::vector<size_t> out;
  if (!order.empty()) {
    const double close = timed[order.front()].median_ms * (1 + 2 * rules.tie_band);
    for (size_t rank = 0; rank < order.size(); ++rank) {
      const bool fast = int(rank) < rules.finalists;
      if ((fast || timed[order[rank]].median_ms <= close) && int(out.size()) < rules.max_finalists)
        out.push_back(order[rank]);
    }
  }
  if (always && *always < timed.size() && timed[*always].median_ms > 0 &&
      std::find(out.begin(), out.end(), *always) == out.end())
    out.push_back(*always);
  std::sort(out.begin(), out.end(),
            [&](size_t a, size_t b) { return config_less(timed[a].config, timed[b].config); });
  return out;
}

size_t pick(std::span<const Timed> timed, double tie_band, std::optional<size_t> incumbent) {
  const std::vector<size_t> order = by_speed(timed);
  if (order.empty()) throw Error(ErrorKind::internal, "no candidate was timed: nothing to pick");
  const double limit = timed[order.front()].median_ms * (1 + tie_band);
  if (incumbent && *incumbent < timed.size() && timed[*incumbent].median_ms > 0 &&
      timed[*incumbent].median_ms <= timed[order.front()].median_ms * (1 + 2 * tie_band))
    return *incumbent;
  size_t winner = order.front();
  for (size_t i : order)
    if (timed[i].median_ms <= limit && preferred(timed[i], timed[winner])) winner = i;
  return winner;
}

double combine_rounds(std::span<const double> round_medians) {
  std::vector<double> v(round_medians.begin(), round_medians.end());
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

} // namespace attnjit::tuner

// Drawing a sorted sample of distinct indices, shared by the forward references' row sampling
// and the backward's key sampling.
#pragma once

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <numeric>
#include <random>
#include <unordered_set>
#include <vector>

namespace attnjit::tuner {

// min(count, total) distinct indices of [0, total), ascending (memory order, so a reference walks
// one (batch, head) at a time). The `always` indices come first, as far as count allows, so the
// edges of a problem are always checked; the rest are uniform draws from `engine`.
inline std::vector<int64_t> sample_indices(int64_t total, int64_t count,
                                           std::initializer_list<int64_t> always,
                                           std::mt19937_64& engine) {
  std::vector<int64_t> picked;
  if (count <= 0 || total <= 0) return picked;
  if (count >= total) {
    picked.resize(total);
    std::iota(picked.begin(), picked.end(), int64_t{0});
    return picked;
  }
  std::unordered_set<int64_t> seen;
  for (int64_t index : always)
    if (static_cast<int64_t>(picked.size()) < count && seen.insert(index).second)
      picked.push_back(index);
  if (2 * count > total) { // dense: a shuffle beats rejection
    std::vector<int64_t> rest;
    for (int64_t i = 0; i < total; ++i)
      if (!seen.contains(i)) rest.push_back(i);
    std::shuffle(rest.begin(), rest.end(), engine);
    picked.insert(picked.end(), rest.begin(), rest.begin() + (count - picked.size()));
  } else {
    std::uniform_int_distribution<int64_t> uniform(0, total - 1);
    while (static_cast<int64_t>(picked.size()) < count)
      if (int64_t index = uniform(engine); seen.insert(index).second) picked.push_back(index);
  }
  std::sort(picked.begin(), picked.end());
  return picked;
}

} // namespace attnjit::tuner

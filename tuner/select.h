// Picking the winner among timed candidates, apart from how they were timed, so the rule is
// testable with invented numbers. Deterministic: candidates within a tolerance band of the
// fastest are ties, and ties go by a fixed rule, so noise smaller than the band cannot change
// the pick between two tuning runs.
#pragma once

#include <attnjit/spec.h>

#include <cstddef>
#include <optional>
#include <span>
#include <vector>

namespace attnjit::tuner {

// Lexicographic over (block_m, block_n, num_warps, num_stages, q_in_registers, wgmma,
// warp_specialized).
bool config_less(const TileConfig& a, const TileConfig& b);

struct Timed {
  TileConfig config;
  int threads = 0;      // per CTA
  int smem_bytes = 0;   // per CTA, dynamic + static
  double median_ms = 0; // <= 0: not timed, never picked
};

// The tie-break between two configs of (nearly) equal speed: fewer threads, then less shared
// memory (both leave more room for other CTAs on the SM), then config_less.
bool preferred(const Timed& a, const Timed& b);

struct SelectionRules {
  // Within 3% of the fastest is a tie. Two tuning runs on an H100 measured the same kernel 1.4%
  // apart (clock drift between runs), which put a 1.5% band's pick on either side of the line.
  double tie_band = 0.03;
  int finalists = 4;     // the fastest few are re-measured in alternation before the pick
  int max_finalists = 8; // with the ones that might tie, at most this many
  int rounds = 5;        // alternation rounds
  int round_runs = 20;   // timed runs per candidate per round
};

// Candidates worth re-measuring: the `rules.finalists` fastest and every one within twice the
// tie band of the fastest (a first-pass time that close may tie or win on a second look), at most
// `rules.max_finalists`, plus `always` (the default config, so the speedup over it is measured
// side by side). Indices in config order, so the alternation runs in the same order every time.
std::vector<size_t> finalists(std::span<const Timed> timed, const SelectionRules& rules,
                              std::optional<size_t> always = std::nullopt);

// Index of the winner: the fastest median; candidates within `tie_band` of it tie, and so does
// `incumbent` (the default config) within twice the band, and then it wins: a tuned record must
// beat the default by more than that, so it is never slower than the default. Twice, because
// the default's time and the fastest's each drift between runs: with several configs within a
// few percent of each other (the warp-specialized forward's block_n variants), a single band
// let the default in on one run and out on the next (H100, 2026-11-26). Other ties go to the
// one preferred() puts first. Throws Error(internal) when nothing was timed.
size_t pick(std::span<const Timed> timed, double tie_band,
            std::optional<size_t> incumbent = std::nullopt);

// One time from alternation rounds: the median of the rounds' medians.
double combine_rounds(std::span<const double> round_medians);

} // namespace attnjit::tuner

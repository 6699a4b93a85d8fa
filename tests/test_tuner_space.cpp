// The candidate space and can_implement: every grid config (forward and backward) is accepted or
// pruned with a reason, codegen's own candidates are always in, and every accepted config
// compiles with NVRTC.
#include "tuner/space.h"
#include "tuner/tune.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <climits>

using namespace attnjit;
using namespace attnjit::tuner;

namespace {

AttentionProblem problem_of(int head_dim, int heads = 8, AttentionShape shape = {1, 1024, 1024}) {
  AttentionProblem p;
  p.spec.head_dim_qk = p.spec.head_dim_v = head_dim;
  p.spec.num_heads = p.spec.num_kv_heads = heads;
  p.shape = shape;
  return p;
}

bool known_reason(const std::string& r) {
  for (const char* k : {kReasonTileShape, kReasonSmem, kReasonRegisters, kReasonSpills, kReasonGrid,
                        kReasonCompile})
    if (r == k) return true;
  return false;
}

} // namespace

TEST_SUITE("tuner.space") {
  TEST_CASE("every grid config is accepted or pruned with a reason; codegen's candidates are in") {
    for (const char* arch : {"sm_80", "sm_86", "sm_90a"})
      for (int d : {64, 128, 256}) {
        const AttentionProblem p = problem_of(d);
        const codegen::ArchLimits device = codegen::arch_limits(arch);
        const Space space = enumerate(p, device);
        INFO(arch, " d", d);
        CHECK(space.accepted.front() == codegen::default_config(p.spec, device));
        CHECK(space.accepted.size() + space.pruned.size() == tuning_grid(p.spec, device).size());
        for (const TileConfig& c : codegen::candidates(p.spec, device))
          CHECK(std::count(space.accepted.begin(), space.accepted.end(), c) == 1);
        for (const auto& [c, verdict] : space.pruned) {
          CHECK(known_reason(verdict.reason));
          CHECK_FALSE(verdict.detail.empty());
          CHECK_FALSE(codegen::why_not(p.spec, c, device).empty());
        }
      }
  }

  TEST_CASE("the backward's space: its own axes, every config accepted or pruned with a reason") {
    for (const char* arch : {"sm_80", "sm_86", "sm_90a"})
      for (int d : {64, 128}) {
        AttentionProblem p = problem_of(d);
        p.spec.pass = Pass::backward;
        const codegen::ArchLimits device = codegen::arch_limits(arch);
        const Space space = enumerate(p, device);
        INFO(arch, " d", d);
        CHECK(space.accepted.front() == codegen::default_config(p.spec, device));
        CHECK(space.accepted.size() + space.pruned.size() == tuning_grid(p.spec, device).size());
        for (const TileConfig& c : codegen::candidates(p.spec, device))
          CHECK(std::count(space.accepted.begin(), space.accepted.end(), c) == 1);
        for (const TileConfig& c : space.accepted) {
          CHECK(codegen::why_not(p.spec, c, device).empty());
          CHECK((c.num_stages == 2 || (c.warp_specialized && c.num_stages == 3)));
          CHECK_FALSE(c.q_in_registers);
        }
        for (const auto& [c, verdict] : space.pruned) {
          CHECK(known_reason(verdict.reason));
          CHECK_FALSE(codegen::why_not(p.spec, c, device).empty());
        }
        // More than codegen's four (d128) or six (d64): the search has real choices.
        if (std::string(arch) == "sm_90a") CHECK(space.accepted.size() >= (d == 64 ? 10u : 7u));
      }
  }

  TEST_CASE("the backward's grid limit counts key blocks of every query head") {
    AttentionProblem p = problem_of(64, 64, {int64_t(1) << 20, 64, 4096});
    p.spec.pass = Pass::backward;
    // 2^20 batches x 64 heads x 32 key blocks = 2^31 CTAs, past INT_MAX (query blocks: 2^26).
    CHECK(can_implement(p, {64, 128, 8, 2, false}, codegen::arch_limits("sm_90a")).reason ==
          kReasonGrid);
    p.shape = {1, 4096, 4096};
    CHECK(can_implement(p, {64, 128, 8, 2, false}, codegen::arch_limits("sm_90a")).ok());
  }

  TEST_CASE("the reasons: shared memory per device, the grid limit, spills after compiling") {
    const AttentionProblem p = problem_of(128);
    const TileConfig big{128, 128, 8, 3, false}; // 224 KiB of shared memory
    CHECK(can_implement(p, big, codegen::arch_limits("sm_90a")).ok());
    CHECK(can_implement(p, big, codegen::arch_limits("sm_80")).reason == kReasonSmem);
    CHECK(can_implement(p, {96, 64, 4, 2, false}, codegen::arch_limits("sm_90a")).reason ==
          kReasonTileShape);
    const AttentionProblem huge = problem_of(64, 64, {int64_t(1) << 30, 4096, 4096});
    CHECK(can_implement(huge, {64, 64, 4, 2, false}, codegen::arch_limits("sm_90a")).reason ==
          kReasonGrid);

    const TileConfig c{64, 64, 4, 2, false};
    std::vector<runtime::ResourceUsage> usage{{"k", 255, 200, 100, 0, 0}};
    const codegen::ArchLimits device = codegen::arch_limits("sm_90a");
    const Verdict spilled = can_implement(p, c, device, usage, PruneRules{256});
    CHECK(spilled.reason == kReasonSpills);
    CHECK(spilled.detail.find("200 B stored") != std::string::npos);
    CHECK(can_implement(p, c, device, usage, PruneRules{300}).ok());
    const auto counts = count_reasons({{c, spilled}, {c, spilled}, {c, {kReasonSmem, "x"}}});
    CHECK(counts.front() == std::pair<std::string, int>{kReasonSpills, 2});
  }

  TEST_CASE("a budget samples a fixed subset, the default first") {
    const Space space = enumerate(problem_of(64), codegen::arch_limits("sm_90a"));
    const std::vector<TileConfig> a = sample(space, 6, 1), b = sample(space, 6, 1);
    CHECK(a.size() == 6);
    CHECK(a == b);
    CHECK(a.front() == space.default_config);
    CHECK(sample(space, 6, 2) != a);
    CHECK(sample(space, 0, 1) == space.accepted);
  }

  // One spec, both architectures: NVRTC for every accepted config (dozens of compiles).
  TEST_CASE("every accepted config compiles with NVRTC for sm_80 and sm_90a") {
    ThreadPool pool;
    for (const char* arch : {"sm_80", "sm_90a"}) {
      const TuneReport r =
          tune(problem_of(64), nullptr, codegen::arch_limits(arch), pool, TuneOptions{});
      INFO(arch);
      CHECK(r.dry_run);
      int compiled = 0;
      for (const CandidateReport& c : r.candidates) {
        INFO(c.slug, ": ", c.pruned.detail);
        CHECK(c.pruned.reason != kReasonCompile);
        compiled += c.pruned.ok();
      }
      CHECK(compiled > 20);
      CHECK(r.pruned + compiled == r.enumerated);
    }
  }
}

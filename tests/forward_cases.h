// The forward GPU tests' common steps: a case (problem, optional config, rows to sample), one
// checked run on fresh inputs (fp64 reference, 2 x plain error + floor, NaN-poisoned outputs,
// guard bands, NaN count) and a batch of cases whose plans are built on all cores first.
#pragma once

#include "tests/gpu_harness.h"
#include "tuner/reference.h"

#include <attnjit/error.h>
#include <attnjit/plan.h>
#include <attnjit/spec.h>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <vector>

namespace attnjit::test {

inline std::string describe(const AttentionProblem& problem,
                            const std::optional<TileConfig>& config) {
  return fmt::format("{} {} scale {}{}", to_string(problem.spec), to_string(problem.shape),
                     effective_softmax_scale(problem),
                     config ? " config " + to_string(*config) : std::string());
}

inline std::string replay_hint(uint64_t seed) {
  return fmt::format("seed {} (replay with ATTNJIT_TEST_SEED={})", seed, seed);
}

struct Case {
  AttentionProblem problem;
  std::optional<TileConfig> config;
  int64_t sample = 0;              // rows to check; 0: every row
  bool may_be_unsupported = false; // Error(unsupported) from the plan is a note, not a failure
};

struct Outcome {
  tuner::Comparison comparison;
  tuner::ForwardRows kernel;
};

// One run on fresh inputs, checked every way this file knows.
inline Outcome check_run(const ForwardPlan& plan, const Case& c) {
  const uint64_t seed = test_seed();
  INFO(replay_hint(seed));
  const tuner::HostAttentionData data = tuner::random_inputs(c.problem, seed);
  DeviceAttention device = upload(data);
  plan.run(device.args, nullptr);
  synchronize();
  const std::vector<tuner::RowId> rows =
      c.sample ? tuner::sample_rows(c.problem, c.sample, seed) : tuner::all_rows(c.problem);
  Outcome outcome;
  outcome.kernel = gather(device, rows);
  outcome.comparison =
      tuner::compare_forward(tuner::reference_forward(data, rows), tuner::plain_forward(data, rows),
                             outcome.kernel, 2.0, tuner::default_abs_floor(c.problem.spec.dtype));
  CHECK_MESSAGE(outcome.comparison.passed, outcome.comparison.summary);
  const std::string guards = check_guards(device);
  CHECK_MESSAGE(guards.empty(), guards);
  if (c.sample) CHECK(count_nan_outputs(device) == 0);
  return outcome;
}

// Builds every plan first, on all cores, then checks the cases one by one.
inline std::vector<Outcome> run_cases(const std::vector<Case>& cases) {
  std::vector<PlanRequest> requests;
  for (const Case& c : cases)
    requests.push_back({c.problem, c.config});
  std::vector<BuiltPlan> plans = build_plans(requests);
  std::vector<Outcome> outcomes(cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    INFO(describe(cases[i].problem, cases[i].config));
    try {
      if (plans[i].error) std::rethrow_exception(plans[i].error);
      outcomes[i] = check_run(*plans[i].plan, cases[i]);
    } catch (const Error& e) {
      if (cases[i].may_be_unsupported && e.kind() == ErrorKind::unsupported)
        MESSAGE(fmt::format("not supported: {}", e.what()));
      else
        FAIL_CHECK(fmt::format("Error({}): {}", to_string(e.kind()), e.what()));
    } catch (const std::exception& e) {
      FAIL_CHECK(fmt::format("exception: {}", e.what()));
    }
  }
  return outcomes;
}

} // namespace attnjit::test

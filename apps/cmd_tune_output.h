// What `attnjit tune` prints: a progress line redrawn in place on a terminal (compiled / timed /
// best so far), plain lines when stdout is not one, or one JSON object per problem with --json.
#pragma once

#include "tuner/campaign.h"

#include <cstdio>
#include <string>
#include <vector>

namespace attnjit::apps {

enum class TuneOutputMode { terminal, plain, json };

class TuneOutput {
public:
  TuneOutput(TuneOutputMode mode, size_t problems) : mode_(mode), problems_(problems) {}

  void started(const tuner::ProblemResult& r);
  void progress(const tuner::ProblemResult& r, const tuner::Progress& p);
  void finished(const tuner::ProblemResult& r);
  // Counts by state and the speedups over the default config. Not in JSON mode.
  void summary(const std::vector<tuner::ProblemResult>& results, double seconds);
  // A --dry-run's report for one problem.
  void dry_run(const tuner::NamedProblem& problem, const tuner::TuneReport& report);

private:
  void clear_line();
  TuneOutputMode mode_;
  size_t problems_;
  bool line_open_ = false; // a progress line is on screen without its newline
};

// One line of JSON for a finished problem.
std::string to_json(const tuner::ProblemResult& r);

} // namespace attnjit::apps

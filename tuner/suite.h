// Lists of problems to tune: the seed benchmark's suite (/work/shared/seed: five attention types,
// three configurations each, forward and backward) and problem files, one line of the CLI's
// problem flags per problem.
#pragma once

#include <attnjit/spec.h>

#include <string>
#include <string_view>
#include <vector>

namespace attnjit::tuner {

struct NamedProblem {
  std::string name; // "mha-2 fwd", or "file.txt:3"
  AttentionProblem problem;
};

// The seed's 15 configurations for the passes asked for, forward first; bf16, not causal, as
// bench/seed_core.py runs them. MLA's attention core there is per-head 128/128 after the latent
// projections (HeadDim=128), one KV head per query head; `--head-dim-v` covers 192/128.
std::vector<NamedProblem> seed_suite(bool forward, bool backward);

// One line of problem flags, as `gen`, `compile` and `run` take them: --dtype=, --batch=,
// --seqlen=, --seqlen-q=, --seqlen-k=, --heads=, --kv-heads=, --head-dim=, --head-dim-v=,
// --causal, --layout=separate|packed, --scale=, and --pass=fwd|bwd. Not validated (tune reports
// an unsupported problem and goes on); throws Error(invalid_argument) for an unknown flag or a
// value that is not a number.
AttentionProblem parse_problem_line(std::string_view line);

// Every non-blank line not starting with '#'; errors name the file and line.
std::vector<NamedProblem> parse_problem_file(const std::string& path);

} // namespace attnjit::tuner

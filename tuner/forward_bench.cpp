// The forward's PassBench: O and LSE per candidate, checked against fp64 reference rows.
#include "tuner/device_tensors.h"
#include "tuner/forward_launch.h"
#include "tuner/pass_bench.h"

#include <fmt/format.h>

#include <optional>

namespace attnjit::tuner {
namespace {

class ForwardBench : public PassBench {
public:
  explicit ForwardBench(const ProblemSetup& setup) : problem_(setup.problem) {
    const HostAttentionData data = random_inputs(problem_, setup.seed);
    rows_ = sample_rows(problem_, setup.check_rows, setup.seed);
    reference_ = reference_forward(data, rows_);
    plain_ = plain_forward(data, rows_);
    inputs_ = upload_inputs(data);
    timing_ = make_outputs(problem_);
  }

  void adopt(const CandidateModule&) override {}

  CUresult launch_checked(const CandidateModule& module) override {
    checked_ = make_outputs(problem_); // its own, poisoned: no earlier answer survives
    return launch_forward(module, problem_, forward_args(inputs_, *checked_, problem_), nullptr);
  }

  PassCheck check() override {
    PassCheck c;
    if (std::string damage = check_guards(inputs_, *checked_); !damage.empty()) {
      c.detail = "wrote outside its buffers: " + damage;
      return c;
    }
    const HostOutputs host = download(*checked_);
    if (const int64_t nans = count_nan(host, problem_.spec.dtype); nans > 0) {
      c.detail = fmt::format("{} of {} outputs are NaN (never written?)", nans,
                             host.o.size() + host.lse.size());
      return c;
    }
    const Comparison r = compare_forward(reference_, plain_, rows_of(host, problem_, rows_), 2.0,
                                         default_abs_floor(problem_.spec.dtype));
    c.passed = r.passed;
    c.detail = r.summary;
    c.max_error = r.max_abs_error;
    return c;
  }

  CUresult launch_timed(const CandidateModule& module, CUstream stream) override {
    return launch_forward(module, problem_, forward_args(inputs_, timing_, problem_), stream);
  }

private:
  AttentionProblem problem_;
  std::vector<RowId> rows_;
  ForwardRows reference_, plain_;
  DeviceInputs inputs_;
  DeviceOutputs timing_;
  std::optional<DeviceOutputs> checked_;
};

} // namespace

std::unique_ptr<PassBench> make_forward_bench(const ProblemSetup& setup) {
  return std::make_unique<ForwardBench>(setup);
}

} // namespace attnjit::tuner

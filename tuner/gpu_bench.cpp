#include "tuner/gpu_bench.h"

#include "runtime/driver.h"
#include "tuner/device_tensors.h"
#include "tuner/forward_launch.h"

#include <attnjit/error.h>

#include <fmt/format.h>

namespace attnjit::tuner {

struct GpuBench::Problem {
  ProblemSetup setup;
  std::vector<RowId> rows;
  ForwardRows reference, plain;
  DeviceInputs inputs;
  DeviceOutputs timing; // where re-measured runs write: their answers were checked already
};

GpuBench::GpuBench(int device) : ordinal_(device) {
  runtime::use_device(device);
  device_.info = query_device(device);
  device_.device_count = device_count();
}

GpuBench::~GpuBench() = default;

void GpuBench::prepare(const ProblemSetup& setup) {
  if (!dead_.empty()) throw Error(ErrorKind::driver, dead_);
  if (setup.problem.spec.pass != Pass::forward)
    throw Error(ErrorKind::unsupported, "the GPU bench runs forward kernels only so far");
  runtime::use_device(ordinal_);
  modules_.clear();
  problem_.reset(); // frees the previous problem's buffers before allocating the next
  auto p = std::make_unique<Problem>();
  p->setup = setup;
  {
    const HostAttentionData data = random_inputs(setup.problem, setup.seed);
    p->rows = sample_rows(setup.problem, setup.check_rows, setup.seed);
    p->reference = reference_forward(data, p->rows);
    p->plain = plain_forward(data, p->rows);
    p->inputs = upload_inputs(data);
  }
  p->timing = make_outputs(setup.problem);
  problem_ = std::move(p);
}

const CandidateModule& GpuBench::module_for(const CompiledCandidate& candidate) {
  auto it = modules_.find(candidate.id);
  if (it == modules_.end() || !(it->second->candidate().config == candidate.config))
    it =
        modules_.insert_or_assign(candidate.id, std::make_unique<CandidateModule>(candidate)).first;
  return *it->second;
}

Outcome GpuBench::evaluate(const CompiledCandidate& candidate) {
  if (!dead_.empty()) throw Error(ErrorKind::driver, dead_);
  if (!problem_) throw Error(ErrorKind::internal, "GpuBench::evaluate before prepare");
  runtime::use_device(ordinal_);
  modules_.erase(candidate.id);
  std::unique_ptr<CandidateModule> module;
  try {
    module = std::make_unique<CandidateModule>(candidate);
  } catch (const Error& e) {
    return {candidate.id, Status::failed, e.what(), 0, {}};
  }
  Outcome outcome = check_and_time(candidate, *module);
  if (outcome.status == Status::crashed) dead_ = outcome.detail;
  if (outcome.status == Status::ok) modules_[candidate.id] = std::move(module);
  return outcome;
}

Outcome GpuBench::check_and_time(const CompiledCandidate& candidate,
                                 const CandidateModule& module) {
  const AttentionProblem& problem = problem_->setup.problem;
  const runtime::DriverApi& api = runtime::driver();
  Outcome o{candidate.id, Status::failed, {}, 0, {}};
  DeviceOutputs out = make_outputs(problem); // its own, poisoned: no earlier answer survives
  const ForwardArgs args = forward_args(problem_->inputs, out, problem);

  CUresult r = launch_forward(module, problem, args, nullptr);
  if (r != CUDA_SUCCESS) {
    // A refused launch (too many resources) leaves the context fine; a sticky error does not.
    const CUresult after = api.cuCtxSynchronize();
    o.status = is_sticky(r) || after != CUDA_SUCCESS ? Status::crashed : Status::failed;
    o.detail = "launch refused: " + describe(r);
    return o;
  }
  if ((r = api.cuCtxSynchronize()) != CUDA_SUCCESS) {
    o.status = Status::crashed;
    o.detail = "kernel fault: " + describe(r);
    return o;
  }
  o.status = Status::wrong;
  if (std::string damage = check_guards(problem_->inputs, out); !damage.empty()) {
    o.detail = "wrote outside its buffers: " + damage;
    return o;
  }
  const HostOutputs host = download(out);
  if (const int64_t nans = count_nan(host, problem.spec.dtype); nans > 0) {
    o.detail = fmt::format("{} of {} outputs are NaN (never written?)", nans,
                           host.o.size() + host.lse.size());
    return o;
  }
  const Comparison c =
      compare_forward(problem_->reference, problem_->plain, rows_of(host, problem, problem_->rows),
                      2.0, default_abs_floor(problem.spec.dtype));
  o.max_error = c.max_abs_error;
  o.detail = c.summary;
  if (!c.passed) return o;

  try {
    o.time = measure(
        [&](CUstream stream) {
          runtime::check(launch_forward(module, problem, args, stream), "cuLaunchKernel");
        },
        nullptr, problem_->setup.measure);
  } catch (const Error& e) { // a fault while timing: the context is as dead as after the check
    o.status = Status::crashed;
    o.detail = fmt::format("failed while timing: {}", e.what());
    return o;
  }
  o.status = Status::ok;
  return o;
}

std::vector<std::vector<double>>
GpuBench::remeasure(const std::vector<CompiledCandidate>& candidates, int rounds,
                    const MeasureOptions& options) {
  if (!dead_.empty()) throw Error(ErrorKind::driver, dead_);
  if (!problem_) throw Error(ErrorKind::internal, "GpuBench::remeasure before prepare");
  runtime::use_device(ordinal_);
  const AttentionProblem& problem = problem_->setup.problem;
  const ForwardArgs args = forward_args(problem_->inputs, problem_->timing, problem);
  std::vector<const CandidateModule*> modules;
  for (const CompiledCandidate& c : candidates)
    modules.push_back(&module_for(c));
  const size_t n = candidates.size();
  std::vector<std::vector<double>> medians(n);
  for (int round = 0; round < rounds; ++round)
    for (size_t j = 0; j < n; ++j) {
      const size_t i = (j + size_t(round)) % n; // a different candidate opens each round
      const Measurement m = measure(
          [&](CUstream stream) {
            runtime::check(launch_forward(*modules[i], problem, args, stream), "cuLaunchKernel");
          },
          nullptr, options);
      medians[i].push_back(m.median_ms);
    }
  return medians;
}

} // namespace attnjit::tuner

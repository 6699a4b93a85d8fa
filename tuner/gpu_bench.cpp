#include "tuner/gpu_bench.h"

#include "runtime/driver.h"
#include "tuner/candidate_module.h"
#include "tuner/pass_bench.h"

#include <attnjit/error.h>

#include <fmt/format.h>

namespace attnjit::tuner {

GpuBench::GpuBench(int device) : ordinal_(device) {
  runtime::use_device(device);
  device_.info = query_device(device);
  device_.device_count = device_count();
}

GpuBench::~GpuBench() = default;

void GpuBench::prepare(const ProblemSetup& setup) {
  if (!dead_.empty()) throw Error(ErrorKind::driver, dead_);
  runtime::use_device(ordinal_);
  modules_.clear();
  pass_.reset(); // frees the previous problem's buffers before allocating the next
  measure_ = setup.measure;
  pass_ = setup.problem.spec.pass == Pass::forward ? make_forward_bench(setup)
                                                   : make_backward_bench(setup, device_.info);
}

std::unique_ptr<CandidateModule> GpuBench::load(const CompiledCandidate& candidate) {
  auto module = std::make_unique<CandidateModule>(candidate, device_.info);
  pass_->adopt(*module);
  return module;
}

const CandidateModule& GpuBench::module_for(const CompiledCandidate& candidate) {
  auto it = modules_.find(candidate.id);
  if (it == modules_.end() || !(it->second->candidate().config == candidate.config))
    it = modules_.insert_or_assign(candidate.id, load(candidate)).first;
  return *it->second;
}

Outcome GpuBench::evaluate(const CompiledCandidate& candidate, double screen_above_ms) {
  if (!dead_.empty()) throw Error(ErrorKind::driver, dead_);
  if (!pass_) throw Error(ErrorKind::internal, "GpuBench::evaluate before prepare");
  runtime::use_device(ordinal_);
  modules_.erase(candidate.id);
  std::unique_ptr<CandidateModule> module;
  try {
    module = load(candidate);
  } catch (const Error& e) {
    return {candidate.id, Status::failed, e.what(), 0, {}};
  }
  Outcome outcome = check_and_time(candidate, *module, screen_above_ms);
  if (outcome.status == Status::crashed) dead_ = outcome.detail;
  if (outcome.status == Status::ok) modules_[candidate.id] = std::move(module);
  return outcome;
}

Outcome GpuBench::check_and_time(const CompiledCandidate& candidate, const CandidateModule& module,
                                 double screen_above_ms) {
  const runtime::DriverApi& api = runtime::driver();
  Outcome o{candidate.id, Status::failed, {}, 0, {}};
  CUresult r = pass_->launch_checked(module);
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
  const PassCheck c = pass_->check();
  o.max_error = c.max_error;
  o.detail = c.detail;
  if (!c.passed) {
    o.status = Status::wrong;
    return o;
  }
  const auto launch = [&](CUstream stream) {
    runtime::check(pass_->launch_timed(module, stream), "launching the candidate");
  };
  try {
    if (screen_above_ms > 0) {
      o.time = measure(launch, nullptr, kScreenMeasure);
      o.screened = o.time.median_ms > screen_above_ms;
    }
    if (!o.screened) o.time = measure(launch, nullptr, measure_);
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
  if (!pass_) throw Error(ErrorKind::internal, "GpuBench::remeasure before prepare");
  runtime::use_device(ordinal_);
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
            runtime::check(pass_->launch_timed(*modules[i], stream), "launching the candidate");
          },
          nullptr, options);
      medians[i].push_back(m.median_ms);
    }
  return medians;
}

} // namespace attnjit::tuner

// The backward's PassBench: dQ, dK and dV per candidate, checked against fp64 reference rows and
// keys (3x the plain low-precision error + a floor, the rule tests/test_gpu_backward.cpp uses).
// Every candidate runs all of the backward's launches (codegen/backward_launch.h), as
// BackwardPlan::run does, on O and LSE that the default forward kernel made on the device.
#include "codegen/backward_launch.h"
#include "codegen/codegen.h"
#include "codegen/tile_rules.h"
#include "runtime/driver.h"
#include "runtime/nvrtc_compiler.h"
#include "tuner/device_gradients.h"
#include "tuner/forward_launch.h"
#include "tuner/pass_bench.h"

#include <attnjit/error.h>

#include <fmt/format.h>

#include <map>
#include <optional>

namespace attnjit::tuner {
namespace {

AttentionProblem forward_of(AttentionProblem problem) {
  problem.spec.pass = Pass::forward;
  problem.spec.deterministic = false; // a backward-only flag
  return problem;
}

// O and LSE as a user's forward makes them: the default forward config, compiled here (the
// parent compiled only backward candidates), run once and checked, so that a broken forward is
// reported as such and not as every backward candidate failing.
DeviceOutputs run_forward(const HostAttentionData& data, const DeviceInputs& inputs,
                          const std::vector<RowId>& rows, const DeviceInfo& device) {
  const AttentionProblem problem = forward_of(data.problem);
  const codegen::ArchLimits limits{device.arch(), device.max_smem_per_block, 1024};
  const codegen::GeneratedKernel kernel =
      codegen::generate_forward(problem.spec, codegen::default_config(problem.spec, limits));
  runtime::CompiledProgram program =
      runtime::compile({kernel.source, kernel.slug, kernel.name_expressions(), device.arch(), {}});
  CompiledCandidate compiled;
  compiled.config = codegen::default_config(problem.spec, limits);
  compiled.slug = kernel.slug;
  compiled.cubin = std::move(program.cubin);
  compiled.kernels = std::move(program.lowered_names);
  compiled.threads = kernel.threads;
  compiled.dynamic_smem = kernel.dynamic_smem;
  const CandidateModule module(compiled, device);
  DeviceOutputs out = make_outputs(problem);
  runtime::check(
      launch_forward(module, problem, forward_args(inputs, out, problem), nullptr),
      fmt::format("launching the forward {} for the backward's O and LSE", kernel.slug).c_str());
  ATTNJIT_CU(cuCtxSynchronize());
  const HostOutputs host = download(out);
  const Comparison c =
      compare_forward(reference_forward(data, rows), plain_forward(data, rows),
                      rows_of(host, problem, rows), 2.0, default_abs_floor(problem.spec.dtype));
  if (const int64_t nans = count_nan(host, problem.spec.dtype); nans > 0 || !c.passed)
    throw Error(ErrorKind::internal,
                fmt::format("the forward {} that makes O and LSE for the backward's candidates is "
                            "wrong ({} NaN; {}): no backward candidate could pass",
                            kernel.slug, nans, c.summary));
  return out;
}

class BackwardBench : public PassBench {
public:
  BackwardBench(const ProblemSetup& setup, const DeviceInfo& device)
      : problem_(setup.problem), sm_count_(device.sm_count),
        overlap_launches_(codegen::backward_launches_overlap(device)) {
    const HostBackwardData data = random_backward_inputs(problem_, setup.seed);
    rows_ = sample_rows(problem_, setup.check_rows, setup.seed);
    keys_ = sample_keys(problem_, setup.check_keys, setup.seed, 2);
    reference_ = reference_backward(data, rows_, keys_);
    plain_ = plain_backward(data, rows_, keys_);
    inputs_ = upload_inputs(data.inputs);
    forward_ = run_forward(data.inputs, inputs_, rows_, device);
    dout_ = upload_dout(data);
    timing_ = make_gradients(problem_, 0);
  }

  // The launch geometry depends on the config; the timing workspace grows to the largest.
  void adopt(const CandidateModule& module) override {
    const Launch& launch = launches_[module.candidate().id] = launch_of(module);
    runtime::check(codegen::prepare_backward_kernels(launch.kernels, launch.layout),
                   fmt::format("cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES, {}) for the "
                               "deterministic dQ kernel of {}",
                               launch.layout.dq_smem, module.candidate().slug)
                       .c_str());
    if (launch.layout.workspace_bytes() > timing_.workspace.size())
      timing_.workspace = GuardedBuffer(launch.layout.workspace_bytes());
  }

  CUresult launch_checked(const CandidateModule& module) override {
    const Launch& launch = launches_.at(module.candidate().id);
    checked_ = make_gradients(problem_, launch.layout.workspace_bytes()); // its own, poisoned
    return enqueue(launch, *checked_, nullptr);
  }

  PassCheck check() override {
    PassCheck c;
    std::string damage = check_guards(inputs_, forward_);
    if (std::string more = check_guards(*checked_, dout_); !more.empty())
      damage += (damage.empty() ? "" : "; ") + more;
    if (!damage.empty()) {
      c.detail = "wrote outside its buffers: " + damage;
      return c;
    }
    const HostGradients host = download(*checked_);
    if (const int64_t nans = count_nan(host, problem_.spec.dtype); nans > 0) {
      c.detail = fmt::format("{} gradient values are NaN (never written?)", nans);
      return c;
    }
    const BackwardComparison r =
        compare_backward(reference_, plain_, gradient_rows(host, *checked_, problem_, rows_, keys_),
                         3.0, default_backward_abs_floor(problem_.spec.dtype));
    c.passed = r.passed;
    c.detail = r.summary;
    c.max_error = std::max({r.dq.max_abs_error, r.dk.max_abs_error, r.dv.max_abs_error});
    return c;
  }

  CUresult launch_timed(const CandidateModule& module, CUstream stream) override {
    return enqueue(launches_.at(module.candidate().id), timing_, stream);
  }

private:
  struct Launch {
    codegen::BackwardKernels kernels;
    codegen::BackwardLayout layout;
  };

  Launch launch_of(const CandidateModule& module) const {
    const std::vector<CUfunction>& f = module.functions();
    const CompiledCandidate& c = module.candidate();
    if (f.size() != 4)
      throw Error(ErrorKind::internal,
                  fmt::format("backward candidate {} has {} kernels, the backward launches 4",
                              c.slug, f.size()));
    return {{f[0], f[1], f[2], f[3], c.threads, c.dynamic_smem, c.config, overlap_launches_},
            codegen::backward_layout(problem_, c.config, sm_count_)};
  }

  CUresult enqueue(const Launch& launch, const DeviceGradients& grads, CUstream stream) const {
    const BackwardArgs args = backward_args(inputs_, forward_, dout_, grads, problem_);
    return codegen::enqueue_backward(launch.kernels, problem_, launch.layout, args, stream).result;
  }

  AttentionProblem problem_;
  int sm_count_;
  bool overlap_launches_; // BackwardKernels::overlap_launches
  std::vector<RowId> rows_;
  std::vector<KeyId> keys_;
  BackwardRows reference_, plain_;
  DeviceInputs inputs_;
  DeviceOutputs forward_; // O and LSE
  GuardedBuffer dout_;
  DeviceGradients timing_;
  std::optional<DeviceGradients> checked_;
  std::map<int, Launch> launches_; // by candidate id
};

} // namespace

std::unique_ptr<PassBench> make_backward_bench(const ProblemSetup& setup,
                                               const DeviceInfo& device) {
  return std::make_unique<BackwardBench>(setup, device);
}

} // namespace attnjit::tuner

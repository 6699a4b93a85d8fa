// `attnjit run`: the main job. Builds a plan for the problem, runs it once on random inputs,
// checks sampled rows against an fp64 reference, then times it.
//
// --pass=bwd does the same for the backward: a forward run makes O and LSE, the backward runs on
// random dO, sampled dQ rows and dK/dV keys are checked, and the backward alone is timed.
//
// Without a GPU it still generates and compiles the kernel for sm_90a, prints the compile
// summary and says why it stops there, exiting 0: on a build machine that is all there is to do.
#include "apps/device_problem.h"
#include "apps/kernel_build.h"
#include "apps/problem_options.h"
#include "apps/self_path.h"
#include "runtime/driver.h"
#include "tuner/measure.h"
#include "tuner/reference.h"
#include "tuner/reference_backward.h"

#include <attnjit/device.h>
#include <attnjit/error.h>
#include <attnjit/format.h>
#include <attnjit/plan.h>

#include <fmt/format.h>

#include <random>

using namespace llvm;

namespace attnjit::apps {
namespace {

// Where the plan's config and cubin came from (the tuning database, docs/CACHE.md).
template <class Plan> void print_cache_use(const Plan& plan) {
  const auto source = plan.config_source();
  fmt::print("config     from {}; cubin {}\n",
             source ? cache::to_string(*source) : "the command line",
             plan.binary_from_cache() ? "from the cache database" : "compiled by NVRTC");
  for (const std::string& warning : plan.cache_warnings())
    fmt::print("warning    {}\n", warning);
}

cl::SubCommand Run("run", "Run the forward (or backward) kernel: check it against a reference, "
                          "then time it");
ProblemOptions Problem(Run);
cl::opt<Pass> PassFlag =
    pass_flag(Run, "Which pass to check and time (default fwd)", "the forward: O and LSE",
              "the backward: dQ, dK and dV (after a forward run for O and LSE)");
cl::opt<int> Device("device", cl::desc("GPU ordinal"), cl::init(0), cl::sub(Run),
                    cl::cat(category()));
cl::opt<uint64_t> Seed("seed", cl::desc("Seed of the random inputs (default: a fresh one)"),
                       cl::sub(Run), cl::cat(category()));
cl::opt<int64_t> CheckRows("check-rows", cl::desc("Output rows to check (0: no check)"),
                           cl::init(1024), cl::sub(Run), cl::cat(category()));
cl::opt<bool>
    Deterministic("deterministic",
                  cl::desc("With --pass=bwd: the same bits on every run (dQ from a kernel "
                           "of its own instead of fp32 atomics)"),
                  cl::sub(Run), cl::cat(category()));
cl::opt<int64_t> CheckKeys("check-keys",
                           cl::desc("With --pass=bwd: dK/dV rows to check, drawn from at most two "
                                    "(batch, KV head) pairs (0: none)"),
                           cl::init(256), cl::sub(Run), cl::cat(category()));
cl::opt<bool> TuneOnMiss(
    "tune-on-miss",
    cl::desc("When the tuning database has no record for the problem (nor its bucket), tune it "
             "first and store the record (docs/CACHE.md); candidates run in `attnjit "
             "tune-worker`"),
    cl::sub(Run), cl::cat(category()));
cl::opt<int> Warmup("warmup", cl::desc("Untimed runs before timing"), cl::init(10), cl::sub(Run),
                    cl::cat(category()));
cl::opt<int> Runs("runs", cl::desc("Timed runs (the median is reported)"), cl::init(50),
                  cl::sub(Run), cl::cat(category()));

// The plan's options: the device, and tuning on a miss when asked, with this binary as the worker.
PlanOptions plan_options() {
  PlanOptions options;
  options.device = Device;
  options.tune_on_miss.enabled = TuneOnMiss;
  if (TuneOnMiss) options.tune_on_miss.worker = {self_path(), "tune-worker"};
  return options;
}

// A plan with the tile flags' config, else the database's (tuning on a miss when asked).
template <class Plan> Plan make_plan(const AttentionProblem& problem, const DeviceInfo& gpu) {
  if (const auto config = Problem.config_override(problem.spec, limits_of(gpu))) {
    if (TuneOnMiss)
      throw Error(ErrorKind::invalid_argument,
                  "tile flags pick a config; --tune-on-miss tunes for one");
    return Plan(problem, config, Device);
  }
  return Plan(problem, plan_options());
}

int compile_only(const AttentionProblem& problem, const std::string& why) {
  const codegen::ArchLimits limits = codegen::arch_limits("sm_90a");
  const TileConfig config = Problem.config(problem.spec, limits);
  const KernelBuild build = build_kernel(problem, config, limits.arch);
  print_build_summary(problem, config, build);
  fmt::print("no GPU: {}; compiled {} for {} but cannot run it\n", why, build.kernel.slug,
             limits.arch);
  return 0;
}

// Runs the plan once on poisoned outputs and compares sampled rows with the references.
bool check(const ForwardPlan& plan, const tuner::HostAttentionData& data, DeviceProblem& device,
           uint64_t seed) {
  poison_outputs(device);
  plan.run(device.args, nullptr); // the legacy default stream: nothing else runs here
  ATTNJIT_CU(cuCtxSynchronize());
  const auto rows = tuner::sample_rows(data.problem, CheckRows, seed);
  const tuner::Comparison result =
      tuner::compare_forward(tuner::reference_forward(data, rows), tuner::plain_forward(data, rows),
                             download_rows(device, data.problem, rows), 2.0,
                             tuner::default_abs_floor(data.problem.spec.dtype));
  fmt::print("check      {} rows: {}\n", rows.size(), result.summary);
  return result.passed;
}

void print_time(const AttentionProblem& problem, const tuner::Measurement& m) {
  const double tflops = flop_count(problem) / (m.median_ms * 1e-3) / 1e12;
  fmt::print("time       {:.3f} ms median of {} runs ({:.3f} .. {:.3f}, cv {:.1f}%)\n", m.median_ms,
             m.runs, m.min_ms, m.max_ms, m.cv * 100);
  fmt::print("throughput {:.1f} TFLOP/s\n", tflops);
}

uint64_t seed_of_run() {
  const uint64_t seed = Seed.getNumOccurrences() ? Seed.getValue() : std::random_device{}();
  fmt::print("seed       {} (--seed={} repeats these inputs)\n", seed, seed);
  return seed;
}

int run_forward(const AttentionProblem& problem, const DeviceInfo& gpu) {
  const ForwardPlan plan = make_plan<ForwardPlan>(problem, gpu);
  fmt::print("gpu        {} ({})\n", gpu.name, gpu.arch());
  fmt::print("problem    {} {}\n", problem.spec, problem.shape);
  fmt::print("kernel     {}: {}\n", kernel_slug(problem.spec, plan.config()), plan.config());
  print_cache_use(plan);
  fmt::print("resources  {} registers, {} B smem, {} B local per thread\n",
             plan.registers_per_thread(), plan.shared_memory_bytes(), plan.local_memory_bytes());

  const uint64_t seed = seed_of_run();
  const tuner::HostAttentionData data = tuner::random_inputs(problem, seed);
  DeviceProblem device = upload(data);
  if (CheckRows > 0 && !check(plan, data, device, seed))
    throw Error(ErrorKind::internal, "the kernel's output does not match the reference");

  print_time(problem, tuner::measure([&](CUstream stream) { plan.run(device.args, stream); },
                                     nullptr, {Warmup, Runs}));
  return 0;
}

// Runs the backward once on poisoned gradients and compares sampled dQ rows and dK/dV keys with
// the references (3x the plain error + a floor, the rule for gradients).
bool check_backward(const BackwardPlan& plan, const tuner::HostBackwardData& data,
                    DeviceGradients& device, uint64_t seed) {
  const AttentionProblem& problem = data.inputs.problem;
  poison_gradients(device);
  plan.run(device.args, nullptr);
  ATTNJIT_CU(cuCtxSynchronize());
  const auto rows = tuner::sample_rows(problem, CheckRows, seed);
  // A key's gradient needs every query of its group: two (batch, KV head) pairs keep the
  // reference to seconds on the default problem.
  const auto keys = tuner::sample_keys(problem, CheckKeys, seed, 2);
  const tuner::BackwardComparison result = tuner::compare_backward(
      tuner::reference_backward(data, rows, keys), tuner::plain_backward(data, rows, keys),
      download_gradients(device, problem, rows, keys), 3.0,
      tuner::default_backward_abs_floor(problem.spec.dtype));
  fmt::print("check      {} rows, {} keys: {}\n", rows.size(), keys.size(), result.summary);
  return result.passed;
}

int run_backward(const AttentionProblem& problem, const DeviceInfo& gpu) {
  AttentionProblem forward_problem = problem;
  forward_problem.spec.pass = Pass::forward;
  forward_problem.spec.deterministic = false; // backward-only; the forward always is
  // The tile flags describe the backward's main kernel; the forward only makes O and LSE.
  const ForwardPlan forward(forward_problem, std::nullopt, Device);
  const BackwardPlan plan = make_plan<BackwardPlan>(problem, gpu);
  fmt::print("gpu        {} ({})\n", gpu.name, gpu.arch());
  fmt::print("problem    {} {}\n", problem.spec, problem.shape);
  fmt::print("kernel     {}: {}\n", kernel_slug(problem.spec, plan.config()), plan.config());
  print_cache_use(plan);
  fmt::print("resources  {} registers, {} B smem, {} B local per thread (dK/dV kernel)\n",
             plan.registers_per_thread(), plan.shared_memory_bytes(), plan.local_memory_bytes());
  fmt::print("workspace  {} B\n", plan.workspace_bytes());
  fmt::print("forward    {}: {}\n", kernel_slug(forward_problem.spec, forward.config()),
             forward.config());

  const uint64_t seed = seed_of_run();
  const tuner::HostBackwardData data = tuner::random_backward_inputs(problem, seed);
  DeviceProblem device = upload(data.inputs);
  DeviceGradients gradients = upload_backward(data, device, plan.workspace_bytes());
  forward.run(device.args, nullptr);
  if ((CheckRows > 0 || CheckKeys > 0) && !check_backward(plan, data, gradients, seed))
    throw Error(ErrorKind::internal, "the backward's gradients do not match the reference");

  print_time(problem, tuner::measure([&](CUstream stream) { plan.run(gradients.args, stream); },
                                     nullptr, {Warmup, Runs}));
  return 0;
}

int run_run() {
  if (Runs < 1 || Warmup < 0 || CheckRows < 0 || CheckKeys < 0)
    throw Error(ErrorKind::invalid_argument,
                "--runs must be >= 1, --warmup, --check-rows and --check-keys >= 0");
  AttentionProblem problem = Problem.problem();
  problem.spec.pass = PassFlag;
  problem.spec.deterministic = Deterministic;
  validate(problem); // the backward has limits of its own (head dims up to 128)
  DeviceInfo gpu;
  try {
    gpu = query_device(Device);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::no_device) throw;
    return compile_only(problem, e.what());
  }

  runtime::use_device(Device);
  return problem.spec.pass == Pass::forward ? run_forward(problem, gpu)
                                            : run_backward(problem, gpu);
}

Registration registration(Run, run_run);

} // namespace
} // namespace attnjit::apps

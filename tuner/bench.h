// What the tuner needs from a GPU, as one interface with three implementations: GpuBench
// (gpu_bench.h, CUDA in this process), WorkerBench (worker_client.h: the same in a child process
// that is restarted when a candidate crashes it) and SimBench (sim_bench.h: invented timings for
// the CPU tests). The search and the selection (tune.h) see only this.
#pragma once

#include "tuner/measure.h"

#include <attnjit/device.h>
#include <attnjit/spec.h>

#include <cstdint>
#include <string>
#include <vector>

namespace attnjit::tuner {

struct BenchDevice {
  DeviceInfo info;
  int device_count = 0; // GPUs the driver sees, for `tune --devices all`
};

// Everything the device side needs to judge candidates of one problem.
struct ProblemSetup {
  AttentionProblem problem;
  uint64_t seed = 0;        // of the random inputs: fixed, so every candidate sees the same ones
  int64_t check_rows = 512; // output rows compared with the fp64 reference (all when fewer)
  // Backward: dK/dV rows compared too, drawn from at most two (batch, KV head) pairs, since each
  // pair costs the reference a pass over every query of its group.
  int64_t check_keys = 256;
  MeasureOptions measure;
};

// One compiled candidate as the device needs it: the CUBIN and how to launch it. The tuner's
// TileConfig decides the grid (ceil(Sq / block_m) * B * H CTAs for the forward; the backward's
// launches as codegen/backward_launch.h computes them); threads and shared memory come from the
// generated kernel.
struct CompiledCandidate {
  int id = 0; // the tuner's index, echoed in outcomes
  TileConfig config;
  std::string slug;
  std::vector<char> cubin;
  // Lowered names, main kernel first: the forward launches kernels[0]; the backward all four.
  std::vector<std::string> kernels;
  int threads = 0;
  int dynamic_smem = 0; // bytes
};

enum class Status {
  ok,      // matched the reference and was timed
  wrong,   // wrong output, NaN rows, or a damaged guard band: rejected
  crashed, // the CUDA context died (illegal address, launch failure) or the worker did: rejected
  failed,  // would not load or launch (too many resources) without harming the context: rejected
};
const char* to_string(Status status);

struct Outcome {
  int id = 0;
  Status status = Status::failed;
  std::string detail; // why it was rejected, or the comparison summary when ok
  // Largest |O - reference| (backward: of dQ, dK and dV) over the checked rows.
  double max_error = 0;
  Measurement time; // when ok
  // Timed only by the short screening measurement, which was over the bar it was given: too slow
  // to be worth the full one (TuneOptions::screen). `time` is the short measurement.
  bool screened = false;
};

// The short measurement that screens a candidate before the full one: enough runs to tell a
// config 25% behind the best from one within a few percent, a tenth of the full cost.
inline constexpr MeasureOptions kScreenMeasure{2, 5, true, 0, 0};

class Bench {
public:
  virtual ~Bench() = default;
  virtual const BenchDevice& device() const = 0;
  // Uploads fresh inputs and computes the reference for the evaluate() calls that follow.
  // Throws Error when the device cannot hold the problem.
  virtual void prepare(const ProblemSetup& setup) = 0;
  // Runs the candidate once on poisoned outputs of its own, checks them, then times it. With
  // `screen_above_ms` > 0 it is first timed with kScreenMeasure, and when that median is over
  // `screen_above_ms` the short measurement is its time (Outcome::screened). Reports a bad
  // candidate in the Outcome; throws only when the bench itself is unusable.
  virtual Outcome evaluate(const CompiledCandidate& candidate, double screen_above_ms) = 0;
  // Alternation: `rounds` rounds, each timing every candidate once with `options`, starting one
  // later each round so none always goes first. Returns the per-round medians, [candidate][round].
  virtual std::vector<std::vector<double>>
  remeasure(const std::vector<CompiledCandidate>& candidates, int rounds,
            const MeasureOptions& options) = 0;
};

} // namespace attnjit::tuner

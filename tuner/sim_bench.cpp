#include "tuner/sim_bench.h"

#include <attnjit/error.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

namespace attnjit::tuner {

double simulated_ms(const AttentionProblem& problem, const TileConfig& c) {
  // Any fixed, config-dependent spread will do; this one puts a few configs within 1.5%.
  const int mix = c.block_m * 7 + c.block_n * 3 + c.num_warps * 5 + c.num_stages * 11 +
                  (c.q_in_registers ? 13 : 0) + (c.wgmma ? 19 : 0) + (c.warp_specialized ? 23 : 0);
  const double efficiency = 0.6 + 0.3 * double(mix % 17) / 16;
  return flop_count(problem) / (300e12 * efficiency) * 1e3;
}

SimBench::SimBench(int device, SimOptions options) : options_(options) {
  if (device < 0 || device >= options.device_count)
    throw Error(ErrorKind::invalid_argument, "simulated device ordinal out of range");
  DeviceInfo& info = device_.info;
  info.ordinal = device;
  info.name = "Simulated GPU";
  info.cc_major = 9, info.cc_minor = 0;
  info.sm_count = 132;
  info.max_smem_per_block = 232448;
  info.max_regs_per_block = 65536;
  info.total_memory = 80ll << 30;
  info.l2_bytes = 50ll << 20;
  info.driver_version = 13000;
  device_.device_count = options.device_count;
}

void SimBench::prepare(const ProblemSetup& setup) {
  validate(setup.problem);
  setup_ = setup;
  prepared_ = true;
  ++prepares_;
}

Outcome SimBench::evaluate(const CompiledCandidate& candidate, double screen_above_ms) {
  if (!prepared_) throw Error(ErrorKind::internal, "SimBench::evaluate before prepare");
  const std::string marker(candidate.cubin.begin(), candidate.cubin.end());
  Outcome o{candidate.id, Status::ok, "simulated", 0.001, {}};
  if (marker == kSimWrong) return {candidate.id, Status::wrong, "simulated wrong answer", 1, {}};
  // A real context would be lost; a worker exits after reporting it, so nothing here survives.
  if (marker == kSimFault)
    return {candidate.id, Status::crashed, "kernel fault: simulated illegal address", 0, {}};
  if (marker == kSimAbort || marker == kSimHang) {
    if (!options_.real_crashes)
      return {candidate.id, Status::crashed, "simulated " + marker.substr(4), 0, {}};
    if (marker == kSimAbort) std::abort();
    for (;;)
      std::this_thread::sleep_for(std::chrono::hours(1));
  }
  const double ms = simulated_ms(setup_.problem, candidate.config);
  o.time.median_ms = o.time.min_ms = o.time.max_ms = ms;
  o.screened = screen_above_ms > 0 && ms > screen_above_ms;
  o.time.runs = o.screened ? kScreenMeasure.runs : setup_.measure.runs;
  return o;
}

std::vector<std::vector<double>>
SimBench::remeasure(const std::vector<CompiledCandidate>& candidates, int rounds,
                    const MeasureOptions&) {
  std::vector<std::vector<double>> medians;
  for (const CompiledCandidate& c : candidates)
    medians.emplace_back(size_t(rounds), simulated_ms(setup_.problem, c.config));
  return medians;
}

} // namespace attnjit::tuner

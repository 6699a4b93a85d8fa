#include "tuner/worker_server.h"

#include "tuner/gpu_bench.h"
#include "tuner/sim_bench.h"
#include "tuner/wire.h"

#include <attnjit/error.h>

#include <exception>
#include <string>

namespace attnjit::tuner {
namespace {

std::string what(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown exception";
  }
}

} // namespace

std::unique_ptr<Bench> make_local_bench(int device, bool simulate, bool real_crashes,
                                        int simulated_devices) {
  if (simulate)
    return std::make_unique<SimBench>(device, SimOptions{simulated_devices, real_crashes});
  return std::make_unique<GpuBench>(device);
}

int serve_worker(const std::function<std::unique_ptr<Bench>()>& make_bench, int fd) {
  std::unique_ptr<Bench> bench;
  {
    wire::Writer hello;
    try {
      bench = make_bench();
      hello.str("");
      wire::put(hello, bench->device());
    } catch (...) {
      hello.str(what(std::current_exception()));
    }
    wire::send(fd, wire::Type::hello, hello.bytes());
    if (!bench) return 1;
  }

  for (;;) {
    wire::Message request;
    if (wire::receive(fd, request, -1) != wire::Received::message) return 0; // parent gone
    wire::Reader in(request.payload);
    wire::Writer out;
    switch (request.type) {
    case wire::Type::quit:
      return 0;
    case wire::Type::prepare:
      try {
        bench->prepare(wire::get_setup(in));
        out.str("");
      } catch (...) {
        out.str(what(std::current_exception()));
      }
      wire::send(fd, wire::Type::prepared, out.bytes());
      break;
    case wire::Type::evaluate: {
      const CompiledCandidate candidate = wire::get_candidate(in);
      const double screen_above_ms = in.f64();
      Outcome outcome;
      try {
        outcome = bench->evaluate(candidate, screen_above_ms);
      } catch (...) { // the bench itself broke: as good as a crash
        outcome = {candidate.id, Status::crashed, what(std::current_exception()), 0, {}};
      }
      wire::put(out, outcome);
      wire::send(fd, wire::Type::outcome, out.bytes());
      if (outcome.status == Status::crashed) return kWorkerCrashExit;
      break;
    }
    case wire::Type::remeasure: {
      const int rounds = int(in.i64());
      const MeasureOptions options = wire::get_measure_options(in);
      std::vector<CompiledCandidate> candidates(size_t(in.i64()));
      for (CompiledCandidate& c : candidates)
        c = wire::get_candidate(in);
      try {
        const auto medians = bench->remeasure(candidates, rounds, options);
        out.str("");
        out.i64(int64_t(medians.size()));
        for (const auto& per_round : medians) {
          out.i64(int64_t(per_round.size()));
          for (double ms : per_round)
            out.f64(ms);
        }
        wire::send(fd, wire::Type::remeasured, out.bytes());
      } catch (...) { // candidates that passed once should not fail now: do not trust the context
        out.str(what(std::current_exception()));
        wire::send(fd, wire::Type::remeasured, out.bytes());
        return kWorkerCrashExit;
      }
      break;
    }
    default:
      throw Error(ErrorKind::internal, "tuner worker protocol: unexpected request");
    }
  }
}

} // namespace attnjit::tuner

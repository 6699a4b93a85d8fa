// `attnjit tune-worker`: the child process `attnjit tune` runs candidates in (tuner/
// worker_client.h). It creates the CUDA context itself, serves requests on the socket the parent
// passed as --fd, and exits after a candidate crashes its context; the parent starts a new one.
// Not for direct use: LLVM's cl cannot hide a subcommand, so its description says so.
#include "apps/subcommand.h"
#include "tuner/worker_server.h"

#include <attnjit/error.h>

using namespace llvm;

namespace attnjit::apps {
namespace {

cl::SubCommand Worker("tune-worker", "Internal: the process `tune` runs candidates in");
cl::opt<int> Device("device", cl::desc("GPU ordinal"), cl::init(0), cl::sub(Worker),
                    cl::cat(category()));
cl::opt<int> Fd("fd", cl::desc("Connected socket to the parent"), cl::init(-1), cl::sub(Worker),
                cl::cat(category()));
cl::opt<bool> Simulate("simulate", cl::desc("Simulated GPU (tests)"), cl::Hidden, cl::sub(Worker),
                       cl::cat(category()));
cl::opt<int> SimDevices("sim-devices", cl::desc("Simulated GPUs (tests)"), cl::init(1), cl::Hidden,
                        cl::sub(Worker), cl::cat(category()));

int run_worker() {
  if (Fd < 0)
    throw Error(ErrorKind::invalid_argument, "tune-worker is started by `attnjit tune` (--fd)");
  return tuner::serve_worker(
      [] { return tuner::make_local_bench(Device, Simulate, /*real_crashes=*/true, SimDevices); },
      Fd);
}

Registration registration(Worker, run_worker);

} // namespace
} // namespace attnjit::apps

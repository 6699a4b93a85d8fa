// The worker's end of the protocol (wire.h): `attnjit tune-worker` creates the bench (and with
// it the CUDA context: never in the parent, which forks) and answers requests until told to quit.
#pragma once

#include "tuner/bench.h"

#include <functional>
#include <memory>

namespace attnjit::tuner {

// Exit status of a worker that reported a crashed candidate: its CUDA context is unusable, so it
// leaves and the parent starts a fresh one.
inline constexpr int kWorkerCrashExit = 86;

// The bench of this process: GpuBench on `device`, or SimBench when `simulate` (tests). A worker
// asks for real crashes, so a simulated abort or hang ends it as a faulty kernel would.
std::unique_ptr<Bench> make_local_bench(int device, bool simulate, bool real_crashes = false,
                                        int simulated_devices = 1);

// Serves the bench `make_bench` creates over the connected socket `fd`. Returns the process exit
// status: 0 after quit or when the parent went away, 1 when the bench could not be created (the
// hello message says why), kWorkerCrashExit after a crash.
int serve_worker(const std::function<std::unique_ptr<Bench>()>& make_bench, int fd);

} // namespace attnjit::tuner

// Crash isolation without a GPU: the real worker process (`attnjit tune-worker --simulate`)
// behind WorkerBench, with candidates that abort the worker, lose the "context", hang, or give a
// wrong answer; the protocol's encoding; and `attnjit tune` end to end on the simulated GPU.
#include "tests/test_tuner_support.h"
#include "tuner/sim_bench.h"
#include "tuner/wire.h"
#include "tuner/worker_client.h"

#include <attnjit/error.h>

#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sys/wait.h>

using namespace attnjit;
using namespace attnjit::tuner;

namespace {

std::vector<std::string> sim_worker() {
  return {test::cli_path(), "tune-worker", "--simulate"};
}

ProblemSetup setup() {
  ProblemSetup s;
  s.problem.spec.head_dim_qk = s.problem.spec.head_dim_v = 64;
  s.problem.shape = {1, 512, 512};
  s.seed = 7;
  return s;
}

CompiledCandidate candidate(int id, const std::string& marker, TileConfig config = {}) {
  CompiledCandidate c;
  c.id = id;
  c.config = config;
  c.slug = "sim";
  c.cubin.assign(marker.begin(), marker.end());
  c.kernels = {"fake_kernel"};
  c.threads = 128;
  return c;
}

std::string run_cli(const std::string& args, int* status) {
  FILE* pipe = popen(("'" + test::cli_path() + "' " + args + " 2>&1").c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string out;
  char buffer[4096];
  while (size_t n = fread(buffer, 1, sizeof buffer, pipe))
    out.append(buffer, n);
  const int s = pclose(pipe);
  *status = WIFEXITED(s) ? WEXITSTATUS(s) : -1;
  return out;
}

} // namespace

TEST_SUITE("tuner.worker") {
  TEST_CASE("messages round-trip") {
    wire::Writer w;
    ProblemSetup s = setup();
    s.problem.spec.mask = Mask::causal;
    s.check_keys = 77;
    s.problem.softmax_scale = 0.25f;
    s.measure.max_cv = 0.03;
    wire::put(w, s);
    const CompiledCandidate c = candidate(3, "cubin\0bytes", {64, 32, 8, 3, true});
    wire::put(w, c);
    const CompiledCandidate wg = candidate(4, "wgmma", {128, 64, 8, 2, false, true});
    wire::put(w, wg);
    const CompiledCandidate ws = candidate(5, "ws", {128, 64, 12, 2, false, true, true});
    wire::put(w, ws);
    Outcome o{3, Status::wrong, "why", 0.5, {}};
    o.time.median_ms = 1.25, o.time.noisy = true, o.time.attempts = 3;
    o.screened = true;
    wire::put(w, o);
    wire::Reader r(w.bytes());
    const ProblemSetup s2 = wire::get_setup(r);
    CHECK(s2.problem == s.problem);
    CHECK(s2.seed == 7);
    CHECK(s2.check_keys == s.check_keys);
    CHECK(s2.measure.max_cv == 0.03);
    const CompiledCandidate c2 = wire::get_candidate(r);
    CHECK(c2.config == c.config);
    CHECK(c2.cubin == c.cubin);
    CHECK(c2.kernels == c.kernels);
    const CompiledCandidate wg2 = wire::get_candidate(r);
    CHECK(wg2.config == wg.config);
    CHECK(wg2.config.wgmma);
    CHECK_FALSE(wg2.config.q_in_registers);
    CHECK_FALSE(c2.config.wgmma);
    CHECK_FALSE(wg2.config.warp_specialized);
    CHECK_FALSE(c2.config.warp_specialized);
    const CompiledCandidate ws2 = wire::get_candidate(r);
    CHECK(ws2.config == ws.config);
    CHECK(ws2.config.warp_specialized);
    CHECK(ws2.config.wgmma);
    CHECK(ws2.cubin == ws.cubin);
    const Outcome o2 = wire::get_outcome(r);
    CHECK(o2.status == Status::wrong);
    CHECK(o2.time.median_ms == 1.25);
    CHECK(o2.time.noisy);
    CHECK(o2.time.attempts == 3);
    CHECK(o2.screened);
    CHECK_THROWS_AS(wire::get_outcome(r), Error); // nothing left
  }

  TEST_CASE("a worker that aborts, loses its context or hangs is replaced") {
    WorkerTimeouts timeouts;
    timeouts.evaluate_ms = 2000;
    WorkerBench bench(sim_worker(), 0, timeouts);
    CHECK(bench.device().info.name == "Simulated GPU");
    bench.prepare(setup());
    const pid_t first = bench.pid();
    CHECK(bench.evaluate(candidate(0, "SIM:ok"), 0).status == Status::ok);
    CHECK(bench.evaluate(candidate(1, kSimWrong), 0).status == Status::wrong);
    CHECK(bench.pid() == first); // a wrong answer costs nothing
    // The screening bar travels to the worker: under it the short measurement is the time.
    const Outcome slow = bench.evaluate(candidate(8, "SIM:ok"), 1e-9);
    CHECK(slow.status == Status::ok);
    CHECK(slow.screened);
    CHECK(slow.time.runs == kScreenMeasure.runs);
    CHECK_FALSE(bench.evaluate(candidate(9, "SIM:ok"), 1e9).screened);

    const Outcome aborted = bench.evaluate(candidate(2, kSimAbort), 0);
    CHECK(aborted.status == Status::crashed);
    CHECK(aborted.detail.find("signal 6") != std::string::npos);
    CHECK(bench.evaluate(candidate(3, "SIM:ok"), 0).status ==
          Status::ok); // a fresh, prepared worker
    CHECK(bench.restarts() == 1);
    CHECK(bench.pid() != first);

    const Outcome fault = bench.evaluate(candidate(4, kSimFault), 0);
    CHECK(fault.status == Status::crashed);
    CHECK(fault.detail.find("illegal address") != std::string::npos);
    CHECK(fault.detail.find("CUDA context failed") != std::string::npos);

    const Outcome hung = bench.evaluate(candidate(5, kSimHang), 0);
    CHECK(hung.status == Status::crashed);
    CHECK(hung.detail.find("no answer within 2 s") != std::string::npos);

    const auto medians = bench.remeasure({candidate(6, "SIM:ok"), candidate(7, "SIM:ok")}, 3, {});
    REQUIRE(medians.size() == 2);
    CHECK(medians[1].size() == 3);
    CHECK(bench.restarts() == 3);
  }

  TEST_CASE("a worker without a GPU says why") {
    setenv("ATTNJIT_LIBCUDA", "/nonexistent/libcuda.so.1", 1);
    CHECK_THROWS_WITH_AS(WorkerBench({test::cli_path(), "tune-worker"}, 0),
                         doctest::Contains("libcuda"), Error);
    unsetenv("ATTNJIT_LIBCUDA");
    CHECK_THROWS_AS(WorkerBench({"/nonexistent/attnjit", "tune-worker"}, 0), Error);
  }

  TEST_CASE("attnjit tune on the simulated GPU: records, resume, backward, unsupported, JSON") {
    char dir[] = "/tmp/attnjit-tune-cli-XXXXXX";
    REQUIRE(mkdtemp(dir) != nullptr);
    const std::string db = std::string(dir) + "/t.db";
    const std::string args = "tune --simulate --budget=2 --heads=4 --head-dim=64 --seqlen=256 "
                             "--db=" +
                             db;
    int status = 0;
    std::string out = run_cli(args, &status);
    INFO(out);
    CHECK(status == 0);
    CHECK(out.find("1 tuned") != std::string::npos);
    out = run_cli(args + " --json", &status);
    CHECK(status == 0);
    CHECK(out.find(R"("state":"skipped")") != std::string::npos);
    CHECK(out.find(R"("wgmma":)") != std::string::npos); // in the record's config
    CHECK(out.find(R"("warp_specialized":)") != std::string::npos);
    CHECK(out.front() == '{');
    // The backward the same way: two NVRTC compiles of backward candidates, then a record.
    const std::string bwd = "tune --simulate --pass=bwd --budget=2 --heads=4 --head-dim=64 ";
    out = run_cli(bwd + "--seqlen=256 --db=" + db, &status);
    CHECK(status == 0);
    CHECK(out.find("bwd mha bf16 d64") != std::string::npos);
    CHECK(out.find("1 tuned") != std::string::npos);
    out = run_cli("tune --simulate --pass=bwd --head-dim=256 --db=" + db, &status);
    CHECK(out.find("1 unsupported") != std::string::npos);
    out = run_cli("tune --simulate --block-m=64 --db=" + db, &status);
    CHECK(status != 0);
    CHECK(out.find("tile flags") != std::string::npos);
    std::filesystem::remove_all(dir);
  }
}

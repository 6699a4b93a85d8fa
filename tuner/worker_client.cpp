#include "tuner/worker_client.h"

#include "tuner/wire.h"
#include "tuner/worker_server.h"

#include <attnjit/error.h>

#include <fmt/format.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

extern char** environ;

namespace attnjit::tuner {
namespace {

constexpr int kChildFd = 3; // the worker's end of the socket, as the worker sees it

std::string describe_exit(int status) {
  if (WIFEXITED(status)) {
    if (WEXITSTATUS(status) == kWorkerCrashExit)
      return "the worker left after its CUDA context failed";
    return fmt::format("the worker exited with status {}", WEXITSTATUS(status));
  }
  if (WIFSIGNALED(status))
    return fmt::format("the worker was killed by signal {} ({})", WTERMSIG(status),
                       strsignal(WTERMSIG(status)));
  return "the worker stopped";
}

Error protocol_error(const std::string& what) {
  return Error(ErrorKind::internal, "tune worker: " + what);
}

} // namespace

WorkerBench::WorkerBench(std::vector<std::string> command, int device, WorkerTimeouts timeouts)
    : command_(std::move(command)), device_index_(device), timeouts_(timeouts) {
  if (command_.empty()) throw Error(ErrorKind::invalid_argument, "tune worker: empty command");
  start();
}

WorkerBench::~WorkerBench() {
  if (pid_ == 0) return;
  try {
    wire::send(fd_, wire::Type::quit, "");
  } catch (const Error&) { // already gone: stop() reaps it
  }
  stop(false);
}

void WorkerBench::start() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    throw protocol_error(fmt::format("socketpair: {}", std::strerror(errno)));
  if (fds[1] == kChildFd) { // dup2 onto itself would keep CLOEXEC: move it out of the way first
    const int moved = ::fcntl(fds[1], F_DUPFD_CLOEXEC, kChildFd + 1);
    ::close(fds[1]);
    fds[1] = moved;
  }
  std::vector<std::string> args = command_;
  args.push_back(fmt::format("--device={}", device_index_));
  args.push_back(fmt::format("--fd={}", kChildFd));
  std::vector<char*> argv;
  for (std::string& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], kChildFd); // dup2 clears CLOEXEC
  posix_spawn_file_actions_adddup2(&actions, 2, 1); // stray prints must not reach our stdout
  pid_t pid = 0;
  const int spawned = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  if (spawned != 0) {
    ::close(fds[0]);
    throw protocol_error(fmt::format("cannot start {}: {}", command_[0], std::strerror(spawned)));
  }
  pid_ = pid;
  fd_ = fds[0];

  wire::Message hello;
  const wire::Received got = wire::receive(fd_, hello, timeouts_.start_ms);
  if (got != wire::Received::message || hello.type != wire::Type::hello) {
    const std::string how = stop(got == wire::Received::timed_out);
    throw protocol_error(fmt::format("{} did not start: {}", command_[0], how));
  }
  wire::Reader in(hello.payload);
  if (std::string error = in.str(); !error.empty()) {
    stop(false);
    throw Error(ErrorKind::no_device, error);
  }
  device_ = wire::get_device(in);
}

std::string WorkerBench::stop(bool kill_now) {
  if (fd_ >= 0) ::close(fd_), fd_ = -1;
  if (pid_ == 0) return "no worker";
  int status = 0;
  // A worker that reported a crash, or was told to quit, exits at once; give it 10 s.
  for (int waited_ms = 0; !kill_now; waited_ms += 10) {
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = 0;
      return describe_exit(status);
    }
    if (r < 0 || waited_ms >= 10'000) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid_, SIGKILL);
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = 0;
  return kill_now ? "the worker was killed" : describe_exit(status);
}

void WorkerBench::send_prepare() {
  wire::Writer out;
  wire::put(out, setup_);
  wire::send(fd_, wire::Type::prepare, out.bytes());
  wire::Message reply;
  const wire::Received got = wire::receive(fd_, reply, timeouts_.prepare_ms);
  if (got != wire::Received::message || reply.type != wire::Type::prepared) {
    const std::string how = stop(got == wire::Received::timed_out);
    throw protocol_error(fmt::format("preparing {} {}: {}", to_string(setup_.problem.spec),
                                     to_string(setup_.problem.shape), how));
  }
  wire::Reader in(reply.payload);
  if (std::string error = in.str(); !error.empty()) throw Error(ErrorKind::driver, error);
}

void WorkerBench::ensure_running() {
  if (pid_ != 0) return;
  ++restarts_;
  start();
  if (prepared_) send_prepare();
}

void WorkerBench::prepare(const ProblemSetup& setup) {
  setup_ = setup;
  prepared_ = false;
  ensure_running();
  send_prepare();
  prepared_ = true;
}

Outcome WorkerBench::evaluate(const CompiledCandidate& candidate, double screen_above_ms) {
  ensure_running();
  wire::Writer out;
  wire::put(out, candidate);
  out.f64(screen_above_ms);
  wire::Message reply;
  wire::Received got = wire::Received::closed;
  try {
    wire::send(fd_, wire::Type::evaluate, out.bytes());
    got = wire::receive(fd_, reply, timeouts_.evaluate_ms);
  } catch (const Error&) { // the send failed: the worker is gone
  }
  if (got == wire::Received::message && reply.type == wire::Type::outcome) {
    wire::Reader in(reply.payload);
    Outcome outcome = wire::get_outcome(in);
    if (outcome.status == Status::crashed) outcome.detail += "; " + stop(false);
    return outcome;
  }
  const bool hung = got == wire::Received::timed_out;
  const std::string how = stop(hung);
  return {candidate.id,
          Status::crashed,
          hung ? fmt::format("no answer within {} s; {}", timeouts_.evaluate_ms / 1000, how) : how,
          0,
          {}};
}

std::vector<std::vector<double>>
WorkerBench::remeasure(const std::vector<CompiledCandidate>& candidates, int rounds,
                       const MeasureOptions& options) {
  ensure_running();
  wire::Writer out;
  out.i64(rounds);
  wire::put(out, options);
  out.i64(int64_t(candidates.size()));
  for (const CompiledCandidate& c : candidates)
    wire::put(out, c);
  wire::send(fd_, wire::Type::remeasure, out.bytes());
  wire::Message reply;
  const wire::Received got = wire::receive(fd_, reply, timeouts_.remeasure_ms);
  if (got != wire::Received::message || reply.type != wire::Type::remeasured)
    throw protocol_error("re-measuring the finalists: " + stop(got == wire::Received::timed_out));
  wire::Reader in(reply.payload);
  if (std::string error = in.str(); !error.empty()) {
    stop(false);
    throw Error(ErrorKind::driver, "re-measuring the finalists: " + error);
  }
  std::vector<std::vector<double>> medians(size_t(in.i64()));
  for (auto& per_round : medians) {
    per_round.resize(size_t(in.i64()));
    for (double& ms : per_round)
      ms = in.f64();
  }
  return medians;
}

} // namespace attnjit::tuner

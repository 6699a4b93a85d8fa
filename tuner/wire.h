// The tuner's worker protocol: length-prefixed binary messages over a socketpair (a two-way
// pipe; send() with MSG_NOSIGNAL means a dead peer is an error return, never SIGPIPE). Both ends
// are the same binary, so the encoding needs no versioning: fixed-width little-endian fields in
// the order the put/get pairs below write them.
#pragma once

#include "tuner/bench.h"

#include <cstdint>
#include <string>
#include <vector>

namespace attnjit::tuner::wire {

enum class Type : uint32_t {
  hello = 1,  // worker -> parent: BenchDevice, or the error that stopped it
  prepare,    // parent -> worker: ProblemSetup
  prepared,   // worker -> parent: "" or the error
  evaluate,   // parent -> worker: CompiledCandidate, then the screening bar (f64, ms)
  outcome,    // worker -> parent: Outcome
  remeasure,  // parent -> worker: rounds, MeasureOptions, candidates
  remeasured, // worker -> parent: "" or the error, then medians
  quit,       // parent -> worker
};

struct Message {
  Type type = Type::quit;
  std::string payload;
};

class Writer {
public:
  void u32(uint32_t v) { raw(&v, sizeof v); }
  void i64(int64_t v) { raw(&v, sizeof v); }
  void f64(double v) { raw(&v, sizeof v); }
  void str(const std::string& s);
  void blob(const std::vector<char>& b);
  const std::string& bytes() const { return bytes_; }

private:
  void raw(const void* p, size_t n) { bytes_.append(static_cast<const char*>(p), n); }
  std::string bytes_;
};

// Throws Error(internal) when the payload ends early: a message from a broken peer.
class Reader {
public:
  explicit Reader(const std::string& bytes) : bytes_(bytes) {}
  uint32_t u32();
  int64_t i64();
  double f64();
  std::string str();
  std::vector<char> blob();

private:
  void raw(void* p, size_t n);
  const std::string& bytes_;
  size_t at_ = 0;
};

void put(Writer& w, const BenchDevice& d);
void put(Writer& w, const AttentionProblem& p);
void put(Writer& w, const TileConfig& c);
void put(Writer& w, const MeasureOptions& m);
void put(Writer& w, const Measurement& m);
void put(Writer& w, const ProblemSetup& s);
void put(Writer& w, const CompiledCandidate& c);
void put(Writer& w, const Outcome& o);

BenchDevice get_device(Reader& r);
AttentionProblem get_problem(Reader& r);
TileConfig get_config(Reader& r);
MeasureOptions get_measure_options(Reader& r);
Measurement get_measurement(Reader& r);
ProblemSetup get_setup(Reader& r);
CompiledCandidate get_candidate(Reader& r);
Outcome get_outcome(Reader& r);

// Throws Error(internal) naming errno when the peer is gone.
void send(int fd, Type type, const std::string& payload);

enum class Received { message, closed, timed_out };
// Waits up to `timeout_ms` (< 0: forever) for a whole message. `closed`: the peer exited or
// closed its end, possibly mid-message.
Received receive(int fd, Message& out, int timeout_ms);

} // namespace attnjit::tuner::wire

#include "tuner/wire.h"

#include <attnjit/error.h>

#include <fmt/format.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <poll.h>
#include <sys/socket.h>

namespace attnjit::tuner::wire {

void Writer::str(const std::string& s) {
  i64(int64_t(s.size()));
  raw(s.data(), s.size());
}

void Writer::blob(const std::vector<char>& b) {
  i64(int64_t(b.size()));
  raw(b.data(), b.size());
}

void Reader::raw(void* p, size_t n) {
  if (n > bytes_.size() - at_)
    throw Error(ErrorKind::internal, "tuner worker protocol: message ends early");
  std::memcpy(p, bytes_.data() + at_, n);
  at_ += n;
}
uint32_t Reader::u32() {
  uint32_t v;
  raw(&v, sizeof v);
  return v;
}
int64_t Reader::i64() {
  int64_t v;
  raw(&v, sizeof v);
  return v;
}
double Reader::f64() {
  double v;
  raw(&v, sizeof v);
  return v;
}
std::string Reader::str() {
  const int64_t n = i64();
  if (n < 0 || size_t(n) > bytes_.size() - at_)
    throw Error(ErrorKind::internal, "tuner worker protocol: bad string length");
  std::string s(bytes_.data() + at_, size_t(n));
  at_ += size_t(n);
  return s;
}
std::vector<char> Reader::blob() {
  const std::string s = str();
  return {s.begin(), s.end()};
}

// ---- the aggregates, field by field -------------------------------------------------------

void put(Writer& w, const BenchDevice& d) {
  const DeviceInfo& i = d.info;
  for (int64_t v :
       {int64_t(i.ordinal), int64_t(i.cc_major), int64_t(i.cc_minor), int64_t(i.sm_count),
        int64_t(i.max_smem_per_block), int64_t(i.max_regs_per_block), int64_t(i.total_memory),
        int64_t(i.driver_version), int64_t(d.device_count), int64_t(i.l2_bytes)})
    w.i64(v);
  w.str(i.name);
}
BenchDevice get_device(Reader& r) {
  BenchDevice d;
  DeviceInfo& i = d.info;
  i.ordinal = int(r.i64()), i.cc_major = int(r.i64()), i.cc_minor = int(r.i64());
  i.sm_count = int(r.i64()), i.max_smem_per_block = int(r.i64());
  i.max_regs_per_block = int(r.i64()), i.total_memory = r.i64();
  i.driver_version = int(r.i64()), d.device_count = int(r.i64());
  i.l2_bytes = r.i64();
  i.name = r.str();
  return d;
}

void put(Writer& w, const AttentionProblem& p) {
  const KernelSpec& s = p.spec;
  for (int64_t v :
       {int64_t(s.pass), int64_t(s.dtype), int64_t(s.head_dim_qk), int64_t(s.head_dim_v),
        int64_t(s.num_heads), int64_t(s.num_kv_heads), int64_t(s.layout), int64_t(s.mask),
        int64_t(s.deterministic), p.shape.batch, p.shape.seqlen_q, p.shape.seqlen_k})
    w.i64(v);
  w.f64(p.softmax_scale);
}
AttentionProblem get_problem(Reader& r) {
  AttentionProblem p;
  KernelSpec& s = p.spec;
  s.pass = Pass(r.i64()), s.dtype = DType(r.i64());
  s.head_dim_qk = int(r.i64()), s.head_dim_v = int(r.i64());
  s.num_heads = int(r.i64()), s.num_kv_heads = int(r.i64());
  s.layout = Layout(r.i64()), s.mask = Mask(r.i64()), s.deterministic = r.i64() != 0;
  p.shape.batch = r.i64(), p.shape.seqlen_q = r.i64(), p.shape.seqlen_k = r.i64();
  p.softmax_scale = float(r.f64());
  return p;
}

void put(Writer& w, const TileConfig& c) {
  for (int64_t v : {c.block_m, c.block_n, c.num_warps, c.num_stages, int(c.q_in_registers),
                    int(c.wgmma), int(c.warp_specialized)})
    w.i64(v);
}
TileConfig get_config(Reader& r) {
  TileConfig c;
  c.block_m = int(r.i64()), c.block_n = int(r.i64()), c.num_warps = int(r.i64());
  c.num_stages = int(r.i64()), c.q_in_registers = r.i64() != 0;
  c.wgmma = r.i64() != 0;
  c.warp_specialized = r.i64() != 0;
  return c;
}

void put(Writer& w, const MeasureOptions& m) {
  w.i64(m.warmup), w.i64(m.runs), w.i64(m.flush_l2), w.f64(m.max_cv), w.i64(m.retries);
}
MeasureOptions get_measure_options(Reader& r) {
  MeasureOptions m;
  m.warmup = int(r.i64()), m.runs = int(r.i64()), m.flush_l2 = r.i64() != 0;
  m.max_cv = r.f64(), m.retries = int(r.i64());
  return m;
}

void put(Writer& w, const Measurement& m) {
  for (double v : {m.median_ms, m.min_ms, m.max_ms, m.cv, m.drift})
    w.f64(v);
  w.i64(m.runs), w.i64(m.attempts), w.i64(m.noisy);
}
Measurement get_measurement(Reader& r) {
  Measurement m;
  m.median_ms = r.f64(), m.min_ms = r.f64(), m.max_ms = r.f64(), m.cv = r.f64();
  m.drift = r.f64();
  m.runs = int(r.i64()), m.attempts = int(r.i64()), m.noisy = r.i64() != 0;
  return m;
}

void put(Writer& w, const ProblemSetup& s) {
  put(w, s.problem);
  w.i64(int64_t(s.seed)), w.i64(s.check_rows), w.i64(s.check_keys);
  put(w, s.measure);
}
ProblemSetup get_setup(Reader& r) {
  ProblemSetup s;
  s.problem = get_problem(r);
  s.seed = uint64_t(r.i64()), s.check_rows = r.i64(), s.check_keys = r.i64();
  s.measure = get_measure_options(r);
  return s;
}

void put(Writer& w, const CompiledCandidate& c) {
  w.i64(c.id);
  put(w, c.config);
  w.str(c.slug);
  w.blob(c.cubin);
  w.i64(int64_t(c.kernels.size()));
  for (const std::string& k : c.kernels)
    w.str(k);
  w.i64(c.threads), w.i64(c.dynamic_smem);
}
CompiledCandidate get_candidate(Reader& r) {
  CompiledCandidate c;
  c.id = int(r.i64());
  c.config = get_config(r);
  c.slug = r.str();
  c.cubin = r.blob();
  for (int64_t n = r.i64(); n > 0; --n)
    c.kernels.push_back(r.str());
  c.threads = int(r.i64()), c.dynamic_smem = int(r.i64());
  return c;
}

void put(Writer& w, const Outcome& o) {
  w.i64(o.id), w.i64(int64_t(o.status));
  w.str(o.detail);
  w.f64(o.max_error);
  put(w, o.time);
  w.i64(o.screened);
}
Outcome get_outcome(Reader& r) {
  Outcome o;
  o.id = int(r.i64()), o.status = Status(r.i64());
  o.detail = r.str();
  o.max_error = r.f64();
  o.time = get_measurement(r);
  o.screened = r.i64() != 0;
  return o;
}

// ---- the socket --------------------------------------------------------------------------

void send(int fd, Type type, const std::string& payload) {
  Writer header;
  header.u32(uint32_t(type));
  header.i64(int64_t(payload.size()));
  for (const std::string* part : {&header.bytes(), &payload}) {
    size_t done = 0;
    while (done < part->size()) {
      const ssize_t n = ::send(fd, part->data() + done, part->size() - done, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0)
        throw Error(ErrorKind::internal,
                    fmt::format("tuner worker protocol: send failed: {}", std::strerror(errno)));
      done += size_t(n);
    }
  }
}

namespace {

// Reads exactly n bytes before `deadline` (none when timeout_ms < 0).
Received read_exactly(int fd, char* p, size_t n, int timeout_ms,
                      std::chrono::steady_clock::time_point deadline) {
  while (n > 0) {
    int wait = -1;
    if (timeout_ms >= 0) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return Received::timed_out;
      wait = int(left.count());
    }
    pollfd pfd{fd, POLLIN, 0};
    const int ready = ::poll(&pfd, 1, wait);
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) return Received::timed_out;
    const ssize_t got = ::recv(fd, p, n, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return Received::closed; // EOF, or ECONNRESET from a dead peer
    p += got;
    n -= size_t(got);
  }
  return Received::message;
}

} // namespace

Received receive(int fd, Message& out, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  char header[12];
  if (Received r = read_exactly(fd, header, sizeof header, timeout_ms, deadline);
      r != Received::message)
    return r;
  uint32_t type;
  int64_t size;
  std::memcpy(&type, header, 4);
  std::memcpy(&size, header + 4, 8);
  if (size < 0 || size > (int64_t(1) << 32))
    throw Error(ErrorKind::internal, "tuner worker protocol: bad message length");
  out.type = Type(type);
  out.payload.assign(size_t(size), '\0');
  return read_exactly(fd, out.payload.data(), out.payload.size(), timeout_ms, deadline);
}

} // namespace attnjit::tuner::wire

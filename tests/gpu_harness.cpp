#include "tests/gpu_harness.h"

#include "runtime/driver.h"

#include <attnjit/device.h>
#include <attnjit/error.h>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <thread>

namespace attnjit::test {

bool gpu_available(std::string* why) {
  try {
    runtime::driver();
    if (device_count() == 0) {
      if (why) *why = "the CUDA driver reports no device";
      return false;
    }
    runtime::use_device(0);
    return true;
  } catch (const Error& e) {
    if (why) *why = e.what();
    return false;
  }
}

bool gpu_usable() {
  static const bool usable = [] {
    std::string why;
    const bool ok = gpu_available(&why);
    if (!ok) {
      std::printf("GPU tests skipped: %s\n", why.c_str());
    } else {
      const DeviceInfo device = query_device(0);
      std::printf("GPU tests run on: %s (%s, driver %d)\n", device.name.c_str(),
                  device.arch().c_str(), device.driver_version);
    }
    std::fflush(stdout);
    return ok;
  }();
  return usable;
}

namespace {
// Decide before main(), so the line is printed even when every GPU case is filtered out.
[[maybe_unused]] const bool announced = gpu_usable();

std::string first_difference(const std::vector<unsigned char>& bytes, size_t base) {
  for (size_t i = 0; i < bytes.size(); ++i) {
    const unsigned char expect = static_cast<unsigned char>(kNanPattern >> (8 * ((base + i) % 4)));
    if (bytes[i] != expect)
      return fmt::format("byte {} is {:#04x}, expected {:#04x}", i, bytes[i], expect);
  }
  return {};
}

TensorView bshd(const void* data, int64_t seqlen, int64_t heads, int64_t head_dim) {
  return {data, seqlen * heads * head_dim, heads * head_dim, head_dim};
}
} // namespace

GuardedBuffer::GuardedBuffer(size_t payload_bytes)
    // Rounded to whole words so one cuMemsetD32 covers everything; the padding is guard too.
    : buffer_((2 * kGuardBytes + payload_bytes + 3) / 4 * 4), payload_(payload_bytes) {
  buffer_.fill32(kNanPattern);
}

void GuardedBuffer::upload(const void* src, size_t bytes, size_t offset) {
  if (offset + bytes > payload_)
    throw Error(ErrorKind::invalid_argument, "GuardedBuffer::upload past the payload");
  if (bytes) buffer_.upload(src, bytes, kGuardBytes + offset);
}

void GuardedBuffer::download(void* dst, size_t bytes, size_t offset) const {
  if (offset + bytes > payload_)
    throw Error(ErrorKind::invalid_argument, "GuardedBuffer::download past the payload");
  if (bytes) buffer_.download(dst, bytes, kGuardBytes + offset);
}

void GuardedBuffer::poison() {
  // Whole words from the payload's (aligned) start: any spill into the back guard writes the
  // pattern the guard holds anyway.
  ATTNJIT_CU(cuMemsetD32(buffer_.address() + kGuardBytes, kNanPattern, (payload_ + 3) / 4));
  // The memset may still be queued: a kernel on a non-blocking stream would not wait for it.
  ATTNJIT_CU(cuStreamSynchronize(nullptr));
}

std::string GuardedBuffer::check_guards() const {
  std::vector<unsigned char> bytes(kGuardBytes);
  buffer_.download(bytes.data(), kGuardBytes, 0);
  if (std::string diff = first_difference(bytes, 0); !diff.empty()) return "front guard: " + diff;
  const size_t back = kGuardBytes + payload_;
  bytes.resize(buffer_.size() - back);
  buffer_.download(bytes.data(), bytes.size(), back);
  if (std::string diff = first_difference(bytes, back); !diff.empty()) return "back guard: " + diff;
  return {};
}

DeviceAttention upload(const tuner::HostAttentionData& data) {
  const KernelSpec& spec = data.problem.spec;
  const AttentionShape& shape = data.problem.shape;
  const int64_t b = shape.batch, sq = shape.seqlen_q, sk = shape.seqlen_k;
  const int64_t h = spec.num_heads, kv = spec.num_kv_heads;
  const int64_t dqk = spec.head_dim_qk, dv = spec.head_dim_v;
  DeviceAttention device;
  device.problem = data.problem;
  const std::vector<uint16_t> q = tuner::to_bits(data.q, spec.dtype);
  const std::vector<uint16_t> k = tuner::to_bits(data.k, spec.dtype);
  const std::vector<uint16_t> v = tuner::to_bits(data.v, spec.dtype);
  if (spec.layout == Layout::packed_qkv) {
    if (h != kv || dqk != dv || sq != sk)
      throw Error(ErrorKind::invalid_argument,
                  "packed QKV needs num_heads == num_kv_heads, one head dim and Sq == Sk");
    const size_t row = h * dqk; // one (batch, seq) position of one of q, k, v
    std::vector<uint16_t> qkv(3 * q.size());
    for (int64_t pos = 0; pos < b * sq; ++pos) {
      std::memcpy(&qkv[(3 * pos + 0) * row], &q[pos * row], row * 2);
      std::memcpy(&qkv[(3 * pos + 1) * row], &k[pos * row], row * 2);
      std::memcpy(&qkv[(3 * pos + 2) * row], &v[pos * row], row * 2);
    }
    GuardedBuffer& buffer = device.inputs.emplace_back(qkv.size() * 2);
    buffer.upload(qkv.data(), qkv.size() * 2);
    const auto* base = static_cast<const uint16_t*>(buffer.data());
    for (int i = 0; i < 3; ++i) {
      TensorView view{base + i * row, sq * 3 * static_cast<int64_t>(row),
                      3 * static_cast<int64_t>(row), dqk};
      (i == 0 ? device.args.q : i == 1 ? device.args.k : device.args.v) = view;
    }
  } else {
    device.inputs.reserve(3);
    for (const std::vector<uint16_t>* t : {&q, &k, &v}) {
      GuardedBuffer& buffer = device.inputs.emplace_back(t->size() * 2);
      buffer.upload(t->data(), t->size() * 2);
    }
    device.args.q = bshd(device.inputs[0].data(), sq, h, dqk);
    device.args.k = bshd(device.inputs[1].data(), sk, kv, dqk);
    device.args.v = bshd(device.inputs[2].data(), sk, kv, dv);
  }
  device.o = GuardedBuffer(b * sq * h * dv * 2);
  device.lse = GuardedBuffer(b * h * sq * sizeof(float));
  device.args.o = bshd(device.o.data(), sq, h, dv);
  device.args.lse = static_cast<float*>(device.lse.data());
  return device;
}

void poison_outputs(DeviceAttention& device) {
  device.o.poison();
  device.lse.poison();
}

std::string check_guards(const DeviceAttention& device) {
  std::string report;
  const auto check = [&](const GuardedBuffer& buffer, const std::string& name) {
    if (std::string damage = buffer.check_guards(); !damage.empty())
      report += fmt::format("{}{}: {}", report.empty() ? "" : "\n", name, damage);
  };
  for (size_t i = 0; i < device.inputs.size(); ++i)
    check(device.inputs[i], device.inputs.size() == 1 ? "qkv" : std::string(1, "qkv"[i]));
  check(device.o, "o");
  check(device.lse, "lse");
  return report;
}

namespace {
struct Outputs {
  std::vector<uint16_t> o;
  std::vector<float> lse;
};
Outputs download_outputs(const DeviceAttention& device) {
  Outputs out{std::vector<uint16_t>(device.o.size() / 2),
              std::vector<float>(device.lse.size() / sizeof(float))};
  device.o.download(out.o.data(), device.o.size());
  device.lse.download(out.lse.data(), device.lse.size());
  return out;
}
} // namespace

tuner::ForwardRows gather(const DeviceAttention& device, const std::vector<tuner::RowId>& rows) {
  const Outputs out = download_outputs(device);
  const int64_t sq = device.problem.shape.seqlen_q, h = device.problem.spec.num_heads;
  const int64_t dv = device.problem.spec.head_dim_v;
  tuner::ForwardRows result;
  result.rows = rows;
  result.o.reserve(rows.size() * dv);
  for (const tuner::RowId& row : rows) {
    const uint16_t* o = &out.o[((row.batch * sq + row.query) * h + row.head) * dv];
    for (int64_t d = 0; d < dv; ++d)
      result.o.push_back(tuner::from_bits(o[d], device.problem.spec.dtype));
    result.lse.push_back(out.lse[(row.batch * h + row.head) * sq + row.query]);
  }
  return result;
}

int64_t count_nan_outputs(const DeviceAttention& device) {
  const Outputs out = download_outputs(device);
  const DType dtype = device.problem.spec.dtype;
  int64_t nans = std::count_if(out.o.begin(), out.o.end(), [&](uint16_t bits) {
    return std::isnan(tuner::from_bits(bits, dtype));
  });
  return nans +
         std::count_if(out.lse.begin(), out.lse.end(), [](float x) { return std::isnan(x); });
}

std::vector<BuiltPlan> build_plans(const std::vector<PlanRequest>& requests) {
  std::vector<BuiltPlan> built(requests.size());
  std::atomic<size_t> next{0};
  const auto worker = [&] {
    for (size_t i; (i = next.fetch_add(1)) < requests.size();) {
      try {
        runtime::use_device(0); // the context is per thread
        built[i].plan = std::make_unique<ForwardPlan>(requests[i].problem, requests[i].config);
      } catch (...) {
        built[i].error = std::current_exception();
      }
    }
  };
  const size_t threads =
      std::min<size_t>(requests.size(), std::max(1u, std::thread::hardware_concurrency()));
  std::vector<std::thread> pool;
  for (size_t t = 0; t < threads; ++t)
    pool.emplace_back(worker);
  for (std::thread& t : pool)
    t.join();
  return built;
}

uint64_t test_seed() {
  if (const char* fixed = std::getenv("ATTNJIT_TEST_SEED")) return std::strtoull(fixed, nullptr, 0);
  std::random_device device;
  return (static_cast<uint64_t>(device()) << 32) | device();
}

void synchronize() {
  ATTNJIT_CU(cuCtxSynchronize());
}

} // namespace attnjit::test

#include "tests/gpu_harness.h"

#include "runtime/driver.h"

#include <attnjit/device.h>
#include <attnjit/error.h>

#include <fmt/format.h>

#include <algorithm>
#include <array>
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
    // v_in_k: no V buffer at all; V is K's view.
    const bool v_in_k = spec.layout == Layout::v_in_k;
    device.inputs.reserve(3);
    for (const std::vector<uint16_t>* t : {&q, &k, &v}) {
      if (v_in_k && t == &v) break;
      GuardedBuffer& buffer = device.inputs.emplace_back(t->size() * 2);
      buffer.upload(t->data(), t->size() * 2);
    }
    device.args.q = bshd(device.inputs[0].data(), sq, h, dqk);
    device.args.k = bshd(device.inputs[1].data(), sk, kv, dqk);
    device.args.v = v_in_k ? device.args.k : bshd(device.inputs[2].data(), sk, kv, dv);
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

// ---- Backward ----

namespace {

// Element (b, s, h, 0) of `view` as an index into the host copy of the buffer that starts at
// `base`.
int64_t element(const TensorView& view, const void* base, int64_t b, int64_t s, int64_t h) {
  const int64_t start = (static_cast<const char*>(view.data) - static_cast<const char*>(base)) / 2;
  return start + b * view.batch_stride + s * view.seq_stride + h * view.head_stride;
}

// Which of device.grads holds gradient i (0: dq, 1: dk, 2: dv).
const GuardedBuffer& grad_buffer(const DeviceBackward& device, int i) {
  return device.grads[device.grads.size() == 1 ? 0 : i];
}

std::vector<std::vector<uint16_t>> download_grads(const DeviceBackward& device) {
  std::vector<std::vector<uint16_t>> host;
  for (const GuardedBuffer& buffer : device.grads) {
    std::vector<uint16_t>& bits = host.emplace_back(buffer.size() / 2);
    buffer.download(bits.data(), buffer.size());
  }
  return host;
}

struct GradView {
  const TensorView* view;
  int64_t seqlen, heads, dim;
};

std::array<GradView, 3> grad_views(const DeviceBackward& device) {
  const KernelSpec& spec = device.forward.problem.spec;
  const AttentionShape& shape = device.forward.problem.shape;
  return {GradView{&device.args.dq, shape.seqlen_q, spec.num_heads, spec.head_dim_qk},
          GradView{&device.args.dk, shape.seqlen_k, spec.num_kv_heads, spec.head_dim_qk},
          GradView{&device.args.dv, shape.seqlen_k, spec.num_kv_heads, spec.head_dim_v}};
}

} // namespace

DeviceBackward upload_backward(const tuner::HostBackwardData& data, size_t workspace_bytes,
                               DoutLayout layout) {
  const AttentionProblem& problem = data.inputs.problem;
  const KernelSpec& spec = problem.spec;
  const AttentionShape& shape = problem.shape;
  const int64_t b = shape.batch, sq = shape.seqlen_q, sk = shape.seqlen_k;
  const int64_t h = spec.num_heads, kv = spec.num_kv_heads;
  const int64_t dqk = spec.head_dim_qk, dv = spec.head_dim_v;
  DeviceBackward device;
  device.forward = upload(data.inputs);

  // dO in the asked-for layout; what lies between its elements stays NaN, so a kernel that reads
  // with the wrong strides gets NaN gradients.
  TensorView dout;
  switch (layout) {
  case DoutLayout::contiguous:
    dout = {nullptr, sq * h * dv, h * dv, dv};
    break;
  case DoutLayout::padded_seq:
    dout = {nullptr, sq * (h * dv + kDoutSeqPad), h * dv + kDoutSeqPad, dv};
    break;
  case DoutLayout::heads_outer:
    dout = {nullptr, h * sq * dv, dv, sq * dv};
    break;
  }
  std::vector<uint16_t> dout_bits(b * dout.batch_stride, static_cast<uint16_t>(kNanPattern));
  const std::vector<uint16_t> dense = tuner::to_bits(data.dout, spec.dtype);
  for (int64_t bb = 0; bb < b; ++bb)
    for (int64_t i = 0; i < sq; ++i)
      for (int64_t hh = 0; hh < h; ++hh)
        std::memcpy(
            &dout_bits[bb * dout.batch_stride + i * dout.seq_stride + hh * dout.head_stride],
            &dense[((bb * sq + i) * h + hh) * dv], dv * 2);
  device.dout = GuardedBuffer(dout_bits.size() * 2);
  device.dout.upload(dout_bits.data(), dout_bits.size() * 2);
  dout.data = device.dout.data();

  if (spec.layout == Layout::packed_qkv) {
    // One [B, S, 3, H, D] gradient buffer, sliced exactly like the packed input.
    const int64_t row = h * dqk;
    GuardedBuffer& buffer = device.grads.emplace_back(b * sq * 3 * row * 2);
    const auto* base = static_cast<const uint16_t*>(buffer.data());
    device.args.dq = {base, sq * 3 * row, 3 * row, dqk};
    device.args.dk = {base + row, sq * 3 * row, 3 * row, dqk};
    device.args.dv = {base + 2 * row, sq * 3 * row, 3 * row, dqk};
  } else {
    device.grads.reserve(3);
    device.grads.emplace_back(b * sq * h * dqk * 2);
    device.grads.emplace_back(b * sk * kv * dqk * 2);
    device.grads.emplace_back(b * sk * kv * dv * 2);
    device.args.dq = bshd(device.grads[0].data(), sq, h, dqk);
    device.args.dk = bshd(device.grads[1].data(), sk, kv, dqk);
    device.args.dv = bshd(device.grads[2].data(), sk, kv, dv);
  }
  device.workspace = GuardedBuffer(workspace_bytes);

  device.args.q = device.forward.args.q;
  device.args.k = device.forward.args.k;
  device.args.v = device.forward.args.v;
  device.args.o = device.forward.args.o;
  device.args.lse = device.forward.args.lse;
  device.args.dout = dout;
  device.args.workspace = device.workspace.data();
  device.args.workspace_bytes = workspace_bytes;
  return device;
}

void poison_gradients(DeviceBackward& device) {
  for (GuardedBuffer& buffer : device.grads)
    buffer.poison();
  device.workspace.poison();
}

std::string check_guards(const DeviceBackward& device) {
  std::string report = check_guards(device.forward);
  const auto check = [&](const GuardedBuffer& buffer, const std::string& name) {
    if (std::string damage = buffer.check_guards(); !damage.empty())
      report += fmt::format("{}{}: {}", report.empty() ? "" : "\n", name, damage);
  };
  check(device.dout, "dout");
  for (size_t i = 0; i < device.grads.size(); ++i)
    check(device.grads[i], device.grads.size() == 1 ? "dqkv" : "d" + std::string(1, "qkv"[i]));
  check(device.workspace, "workspace");
  return report;
}

tuner::BackwardRows gather_gradients(const DeviceBackward& device,
                                     const std::vector<tuner::RowId>& rows,
                                     const std::vector<tuner::KeyId>& keys) {
  const std::vector<std::vector<uint16_t>> host = download_grads(device);
  const auto& host_of = [&](int i) -> const std::vector<uint16_t>& {
    return host[device.grads.size() == 1 ? 0 : i];
  };
  const DType dtype = device.forward.problem.spec.dtype;
  const std::array<GradView, 3> views = grad_views(device);
  tuner::BackwardRows out;
  out.rows = rows;
  out.keys = keys;
  const auto append = [&](std::vector<double>& to, int i, int64_t b, int64_t s, int64_t h) {
    const int64_t at = element(*views[i].view, grad_buffer(device, i).data(), b, s, h);
    for (int64_t d = 0; d < views[i].dim; ++d)
      to.push_back(tuner::from_bits(host_of(i)[at + d], dtype));
  };
  for (const tuner::RowId& row : rows)
    append(out.dq, 0, row.batch, row.query, row.head);
  for (const tuner::KeyId& key : keys) {
    append(out.dk, 1, key.batch, key.key, key.kv_head);
    append(out.dv, 2, key.batch, key.key, key.kv_head);
  }
  return out;
}

GradientBits download_gradients(const DeviceBackward& device) {
  const std::vector<std::vector<uint16_t>> host = download_grads(device);
  const std::array<GradView, 3> views = grad_views(device);
  const int64_t batch = device.forward.problem.shape.batch;
  GradientBits bits;
  std::vector<uint16_t>* out[3] = {&bits.dq, &bits.dk, &bits.dv};
  for (int i = 0; i < 3; ++i) {
    const std::vector<uint16_t>& from = host[device.grads.size() == 1 ? 0 : i];
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t s = 0; s < views[i].seqlen; ++s)
        for (int64_t h = 0; h < views[i].heads; ++h) {
          const int64_t at = element(*views[i].view, grad_buffer(device, i).data(), b, s, h);
          out[i]->insert(out[i]->end(), from.begin() + at, from.begin() + at + views[i].dim);
        }
  }
  return bits;
}

int64_t count_nan_gradients(const DeviceBackward& device) {
  const GradientBits bits = download_gradients(device);
  const DType dtype = device.forward.problem.spec.dtype;
  int64_t nans = 0;
  for (const std::vector<uint16_t>* g : {&bits.dq, &bits.dk, &bits.dv})
    nans += std::count_if(g->begin(), g->end(),
                          [&](uint16_t x) { return std::isnan(tuner::from_bits(x, dtype)); });
  return nans;
}

std::vector<BuiltBackward> build_backward_plans(const std::vector<PlanRequest>& requests) {
  std::vector<BuiltBackward> built(requests.size());
  std::vector<std::exception_ptr> errors(2 * requests.size());
  // Job 2i builds request i's forward plan, 2i+1 its backward plan: one pool for both, so the
  // backward compiles (the slow ones) start at once.
  std::atomic<size_t> next{0};
  const auto worker = [&] {
    for (size_t job; (job = next.fetch_add(1)) < errors.size();) {
      const PlanRequest& request = requests[job / 2];
      AttentionProblem problem = request.problem;
      try {
        runtime::use_device(0); // the context is per thread
        if (job % 2 == 0) {
          problem.spec.pass = Pass::forward;
          problem.spec.deterministic = false; // a backward-only flag; the forward always is
          built[job / 2].forward = std::make_unique<ForwardPlan>(problem);
        } else {
          problem.spec.pass = Pass::backward;
          built[job / 2].backward = std::make_unique<BackwardPlan>(problem, request.config);
        }
      } catch (...) {
        errors[job] = std::current_exception();
      }
    }
  };
  const size_t threads =
      std::min<size_t>(errors.size(), std::max(1u, std::thread::hardware_concurrency()));
  std::vector<std::thread> pool;
  for (size_t t = 0; t < threads; ++t)
    pool.emplace_back(worker);
  for (std::thread& t : pool)
    t.join();
  for (size_t i = 0; i < built.size(); ++i)
    if (errors[2 * i] || errors[2 * i + 1]) {
      built[i].error = errors[2 * i] ? errors[2 * i] : errors[2 * i + 1];
      built[i].forward.reset();
      built[i].backward.reset();
    }
  return built;
}

} // namespace attnjit::test

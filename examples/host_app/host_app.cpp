// A host program using attnjit through its C++ API: it points plans at a tuning database of its
// own, plans a GQA causal attention forward and backward once, and runs both on its own CUDA
// stream and device memory. Without a GPU it says so and exits 0.
//
//   host_app [tuning.db]      (default: attnjit-example.db in the current folder)
#include <attnjit/cache_location.h>
#include <attnjit/device.h>
#include <attnjit/error.h>
#include <attnjit/plan.h>
#include <attnjit/version.h>

#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace {

void check(cudaError_t result, const char* what) {
  if (result != cudaSuccess)
    throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(result));
}

// bf16 is the top half of an fp32, rounded to nearest even.
uint16_t to_bf16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  return uint16_t((bits + 0x7fff + ((bits >> 16) & 1)) >> 16);
}

float from_bf16(uint16_t h) {
  const uint32_t bits = uint32_t(h) << 16;
  float x;
  std::memcpy(&x, &bits, 4);
  return x;
}

// One cudaMalloc'd buffer, freed on scope exit.
struct DeviceMemory {
  void* data = nullptr;
  explicit DeviceMemory(size_t bytes) { check(cudaMalloc(&data, bytes), "cudaMalloc"); }
  DeviceMemory(DeviceMemory&& other) noexcept : data(std::exchange(other.data, nullptr)) {}
  ~DeviceMemory() { cudaFree(data); }
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;
};

DeviceMemory random_bf16(size_t count, std::mt19937& rng) {
  std::normal_distribution<float> normal;
  std::vector<uint16_t> host(count);
  for (uint16_t& x : host)
    x = to_bf16(normal(rng));
  DeviceMemory device(count * 2);
  check(cudaMemcpy(device.data, host.data(), count * 2, cudaMemcpyHostToDevice), "cudaMemcpy");
  return device;
}

// Non-finite values among `count` bf16 values on the device.
size_t count_non_finite(const void* data, size_t count) {
  std::vector<uint16_t> host(count);
  check(cudaMemcpy(host.data(), data, count * 2, cudaMemcpyDeviceToHost), "cudaMemcpy");
  size_t bad = 0;
  for (uint16_t x : host)
    bad += !std::isfinite(from_bf16(x));
  return bad;
}

const char* source_name(const std::optional<attnjit::cache::LookupSource>& source) {
  return source ? attnjit::cache::to_string(*source) : "caller";
}

int run(const std::string& database) {
  using namespace attnjit;
  std::printf("attnjit %s, tuning database %s\n", ATTNJIT_VERSION, database.c_str());
  const DeviceInfo gpu = query_device(0); // Error(no_device) on a machine without a GPU
  std::printf("gpu %s (%s)\n", gpu.name.c_str(), gpu.arch().c_str());

  AttentionProblem problem; // bf16, d128
  problem.spec.num_heads = 16;
  problem.spec.num_kv_heads = 4; // GQA
  problem.spec.mask = Mask::causal;
  problem.shape = {2, 1024, 1024};
  const int64_t b = problem.shape.batch, s = problem.shape.seqlen_q, h = problem.spec.num_heads,
                kv = problem.spec.num_kv_heads, d = problem.spec.head_dim_qk;

  // Planning compiles (or loads cubins from the database): once, before the training loop.
  const ForwardPlan forward(problem);
  AttentionProblem backward_problem = problem;
  backward_problem.spec.pass = Pass::backward;
  const BackwardPlan backward(backward_problem);
  std::printf("forward  %s (config from %s)\nbackward %s (config from %s), workspace %zu bytes\n",
              to_string(forward.config()).c_str(), source_name(forward.config_source()),
              to_string(backward.config()).c_str(), source_name(backward.config_source()),
              backward.workspace_bytes());
  for (const std::string& warning : forward.cache_warnings())
    std::printf("warning: %s\n", warning.c_str());

  std::mt19937 rng(7);
  DeviceMemory q = random_bf16(b * s * h * d, rng), k = random_bf16(b * s * kv * d, rng),
               v = random_bf16(b * s * kv * d, rng), dout = random_bf16(b * s * h * d, rng);
  DeviceMemory o(b * s * h * d * 2), lse(b * h * s * 4), dq(b * s * h * d * 2),
      dk(b * s * kv * d * 2), dv(b * s * kv * d * 2), workspace(backward.workspace_bytes());

  cudaStream_t stream; // the same type as attnjit::Stream
  check(cudaStreamCreate(&stream), "cudaStreamCreate");
  ForwardArgs f;
  f.q = contiguous_bshd(q.data, s, h, d);
  f.k = contiguous_bshd(k.data, s, kv, d);
  f.v = contiguous_bshd(v.data, s, kv, d);
  f.o = contiguous_bshd(o.data, s, h, d);
  f.lse = static_cast<float*>(lse.data);
  forward.run(f, stream);
  const BackwardArgs g{f.q,
                       f.k,
                       f.v,
                       f.o,
                       contiguous_bshd(dout.data, s, h, d),
                       f.lse,
                       contiguous_bshd(dq.data, s, h, d),
                       contiguous_bshd(dk.data, s, kv, d),
                       contiguous_bshd(dv.data, s, kv, d),
                       workspace.data,
                       backward.workspace_bytes()};
  backward.run(g, stream);
  check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  check(cudaStreamDestroy(stream), "cudaStreamDestroy");

  const size_t bad =
      count_non_finite(o.data, b * s * h * d) + count_non_finite(dq.data, b * s * h * d) +
      count_non_finite(dk.data, b * s * kv * d) + count_non_finite(dv.data, b * s * kv * d);
  std::printf("ran forward and backward: %s\n",
              bad == 0 ? "O, dQ, dK, dV all finite" : "NON-FINITE VALUES");
  return bad == 0 ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
  const std::string database = argc > 1 ? argv[1] : "attnjit-example.db";
  // Plans made from here on keep their configs and cubins in this file.
  attnjit::set_cache_location({.user_db = database});
  try {
    return run(database);
  } catch (const attnjit::Error& e) {
    if (e.kind() == attnjit::ErrorKind::no_device) {
      std::printf("host_app: skipped: no GPU (%s)\n", e.what());
      return 0;
    }
    std::fprintf(stderr, "host_app: error: %s\n", e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "host_app: error: %s\n", e.what());
  }
  return 1;
}

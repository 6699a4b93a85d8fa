// The dlopen'd driver: the error a machine without one gets (in a subprocess, since the driver is
// loaded once per process), what works without a GPU, and, where a GPU is usable, devices,
// buffers and kernel loading.
#include "runtime/device_buffer.h"
#include "runtime/driver.h"
#include "runtime/kernel_loader.h"
#include "tests/gpu_harness.h"

#include <attnjit/device.h>
#include <attnjit/error.h>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

using namespace attnjit;
using namespace attnjit::runtime;

namespace {

struct CliResult {
  int exit_code = -1;
  std::string err; // stderr only
};

// `attnjit info` under a given ATTNJIT_LIBCUDA, in its own process.
CliResult cli_info_with_libcuda(const std::string& libcuda) {
  const std::string command =
      fmt::format("ATTNJIT_LIBCUDA='{}' '{}' info 2>&1 1>/dev/null", libcuda, ATTNJIT_CLI_PATH);
  CliResult result;
  std::FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::array<char, 4096> chunk;
  while (size_t n = std::fread(chunk.data(), 1, chunk.size(), pipe))
    result.err.append(chunk.data(), n);
  const int status = pclose(pipe);
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  return result;
}

// The CUDA toolkit's link-time stub: every driver symbol, and cuInit fails.
std::string stub_libcuda() {
  for (const char* var : {"CUDA_HOME", "CUDA_PATH"})
    if (const char* root = std::getenv(var)) {
      const auto path = std::filesystem::path(root) / "lib64/stubs/libcuda.so";
      if (std::filesystem::exists(path)) return path.string();
    }
  const std::string fallback = "/usr/local/cuda/lib64/stubs/libcuda.so";
  return std::filesystem::exists(fallback) ? fallback : std::string();
}

Error caught_error(auto&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  FAIL("expected an attnjit::Error");
  return Error(ErrorKind::internal, "unreachable");
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

} // namespace

TEST_SUITE("runtime.driver") {

  TEST_CASE("without a driver, `attnjit info` says the driver cannot be loaded") {
    const CliResult r = cli_info_with_libcuda("/nonexistent/libcuda.so.1");
    CAPTURE(r.err);
    CHECK(r.exit_code == 1);
    CHECK(contains(r.err, "attnjit: error: cannot load the CUDA driver"));
    CHECK(contains(r.err, "/nonexistent/libcuda.so.1"));
    CHECK(contains(r.err, "can be generated and compiled but not run"));
  }

  TEST_CASE("with the toolkit's stub libcuda every symbol resolves and cuInit's failure is named") {
    const std::string stub = stub_libcuda();
    if (stub.empty()) {
      MESSAGE("skipped: no CUDA toolkit stub libcuda.so found (set CUDA_HOME)");
      return;
    }
    const CliResult r = cli_info_with_libcuda(stub);
    CAPTURE(r.err);
    CHECK(r.exit_code == 1);
    CHECK(!contains(r.err, "lacks")); // a misspelt or unversioned symbol name would show here
    CHECK(contains(r.err, "cuInit(0): CUDA_ERROR_STUB_LIBRARY"));
  }

  TEST_CASE("nvrtc_version works without a GPU") {
    const std::string version = nvrtc_version();
    CAPTURE(version);
    const size_t dot = version.find('.');
    REQUIRE(dot != std::string::npos);
    CHECK(std::stoi(version.substr(0, dot)) == CUDA_VERSION / 1000);
    CHECK(version.find_first_not_of("0123456789.") == std::string::npos);
  }

  TEST_CASE("compute capability maps to the NVRTC arch") {
    CHECK(arch_for(8, 0) == "sm_80");
    CHECK(arch_for(8, 6) == "sm_86");
    CHECK(arch_for(8, 9) == "sm_89");
    CHECK(arch_for(9, 0) == "sm_90a");
    CHECK(arch_for(10, 0) == "sm_100");
    CHECK(arch_for(12, 0) == "sm_120");
    DeviceInfo hopper;
    hopper.cc_major = 9;
    CHECK(hopper.arch() == "sm_90a");
  }

  TEST_CASE("every ErrorKind has a name") {
    CHECK(std::string(to_string(ErrorKind::invalid_argument)) == "invalid_argument");
    CHECK(std::string(to_string(ErrorKind::unsupported)) == "unsupported");
    CHECK(std::string(to_string(ErrorKind::no_device)) == "no_device");
    CHECK(std::string(to_string(ErrorKind::driver)) == "driver");
    CHECK(std::string(to_string(ErrorKind::compile)) == "compile");
    CHECK(std::string(to_string(ErrorKind::cache)) == "cache");
    CHECK(std::string(to_string(ErrorKind::internal)) == "internal");
  }

  TEST_CASE("a zero-byte DeviceBuffer needs no driver") {
    DeviceBuffer empty(0);
    CHECK(empty.address() == 0);
    CHECK(empty.size() == 0);
    empty.upload(nullptr, 0);
    CHECK(caught_error([&] { empty.upload("x", 1); }).kind() == ErrorKind::invalid_argument);
  }

  // ---- with a GPU ------------------------------------------------------------------------------

  TEST_CASE("query_device and use_device" * test::needs_gpu()) {
    const DeviceInfo d = query_device(0);
    CHECK(!d.name.empty());
    CHECK(d.cc_major >= 7);
    CHECK(d.sm_count > 0);
    CHECK(d.max_smem_per_block >= 48 * 1024);
    CHECK(d.max_regs_per_block >= 32 * 1024);
    CHECK(d.total_memory > (1ll << 30));
    CHECK(d.driver_version >= 12000);
    CHECK(d.arch() == arch_for(d.cc_major, d.cc_minor));

    const int count = device_count();
    CHECK(count >= 1);
    const Error e = caught_error([&] { use_device(count); });
    CHECK(e.kind() == ErrorKind::invalid_argument);
    CHECK(contains(e.what(), fmt::format("device {} ", count)));
    CHECK(contains(e.what(), fmt::format("reports {} device", count)));
    CHECK(caught_error([] { query_device(-1); }).kind() == ErrorKind::invalid_argument);
    use_device(0);
  }

  TEST_CASE("DeviceBuffer copies, fills and checks ranges" * test::needs_gpu()) {
    use_device(0);
    DeviceBuffer b(1000);
    CHECK(b.address() != 0);
    CHECK(b.size() == 1000);

    std::vector<unsigned char> in(1000), out(1000);
    for (size_t i = 0; i < in.size(); ++i)
      in[i] = static_cast<unsigned char>(i * 7);
    b.upload(in.data(), in.size());
    b.download(out.data(), out.size());
    CHECK(out == in);
    b.upload(in.data(), 10, 990);
    b.download(out.data(), 10, 990);
    CHECK(std::equal(out.begin(), out.begin() + 10, in.begin()));

    b.fill16(0x7fc0);
    std::vector<uint16_t> words(500);
    b.download(words.data(), 1000);
    CHECK(std::all_of(words.begin(), words.end(), [](uint16_t w) { return w == 0x7fc0; }));
    b.fill32(0x12345678);
    std::vector<uint32_t> dwords(250);
    b.download(dwords.data(), 1000);
    CHECK(std::all_of(dwords.begin(), dwords.end(), [](uint32_t w) { return w == 0x12345678; }));

    CHECK(caught_error([&] { b.upload(in.data(), 11, 990); }).kind() ==
          ErrorKind::invalid_argument);
    CHECK(caught_error([&] { b.download(out.data(), 1, 1000); }).kind() ==
          ErrorKind::invalid_argument);
    CHECK(caught_error([&] { b.upload(in.data(), 1, SIZE_MAX); }).kind() ==
          ErrorKind::invalid_argument);
    DeviceBuffer odd(6);
    CHECK(caught_error([&] { odd.fill32(0); }).kind() == ErrorKind::invalid_argument);

    // Moves transfer ownership; the moved-from buffer is empty and frees nothing.
    const CUdeviceptr address = b.address();
    DeviceBuffer moved(std::move(b));
    CHECK(moved.address() == address);
    CHECK(b.address() == 0);
    moved = DeviceBuffer(16);
    CHECK(moved.size() == 16);

    // Another thread, with no context of its own, can use and free the buffer.
    std::thread([&] {
      moved.fill32(0xabcdef01);
      uint32_t first = 0;
      moved.download(&first, 4);
      CHECK(first == 0xabcdef01);
      DeviceBuffer gone = std::move(moved);
    }).join();
  }

  namespace {

  constexpr const char* kLoaderSource = R"(
#include <attnjit/fwd_params.h>
namespace demo {
// Round-trips through dynamic shared memory so the opt-in limit matters.
template <int kThreads> __global__ void reverse(float* out, const float* in) {
  extern __shared__ float staged[];
  staged[threadIdx.x] = in[threadIdx.x];
  __syncthreads();
  out[threadIdx.x] = staged[kThreads - 1 - threadIdx.x] + 1.0f;
}
}
)";

  CompileRequest loader_request(const std::string& tag) {
    // `tag` makes the source differ, so each test case starts with an empty cache entry.
    return CompileRequest{fmt::format("// {}\n{}", tag, kLoaderSource),
                          "demo_reverse",
                          {"demo::reverse<256>"},
                          query_device(0).arch(),
                          {}};
  }

  } // namespace

  TEST_CASE("load_kernel sets the shared-memory opt-in and the kernel runs" * test::needs_gpu()) {
    use_device(0);
    const DeviceInfo d = query_device(0);
    const int dynamic_smem = 64 * 1024; // above the 48 KiB default
    REQUIRE(d.max_smem_per_block >= dynamic_smem);
    const CompileRequest request = loader_request("runs");
    const auto kernel = load_kernel(request, 0, dynamic_smem);
    REQUIRE(kernel->function != nullptr);
    CHECK(kernel->registers > 0);
    CHECK(kernel->max_threads >= 256);
    CHECK(kernel->dynamic_smem == dynamic_smem);
    CHECK(kernel->local_bytes == 0);

    CHECK(load_kernel(request, 0, dynamic_smem) == kernel); // cached

    std::vector<float> in(256), out(256);
    for (int i = 0; i < 256; ++i)
      in[size_t(i)] = float(i);
    DeviceBuffer din(1024), dout(1024);
    din.upload(in.data(), 1024);
    dout.fill32(0);
    CUdeviceptr out_ptr = dout.address(), in_ptr = din.address();
    void* args[] = {&out_ptr, &in_ptr};
    ATTNJIT_CU(cuLaunchKernel(kernel->function, 1, 1, 1, 256, 1, 1, unsigned(dynamic_smem), nullptr,
                              args, nullptr));
    ATTNJIT_CU(cuCtxSynchronize());
    dout.download(out.data(), 1024);
    for (int i = 0; i < 256; ++i)
      CHECK(out[size_t(i)] == float(255 - i) + 1.0f);

    // More than the device allows names both numbers.
    const int too_much = d.max_smem_per_block + 1;
    const Error e = caught_error([&] { load_kernel(request, 0, too_much); });
    CHECK(e.kind() == ErrorKind::invalid_argument);
    CHECK(contains(e.what(), std::to_string(too_much)));
    CHECK(contains(e.what(), std::to_string(d.max_smem_per_block)));
    CHECK(caught_error([&] { load_kernel(request, device_count(), 0); }).kind() ==
          ErrorKind::invalid_argument);
  }

  TEST_CASE("threads asking for the same kernel share one load" * test::needs_gpu()) {
    const CompileRequest request = loader_request("threads");
    std::vector<std::shared_ptr<const LoadedKernel>> got(8);
    std::vector<std::thread> threads;
    for (size_t i = 0; i < got.size(); ++i)
      threads.emplace_back([&, i] { got[i] = load_kernel(request, 0, 1024); });
    for (auto& t : threads)
      t.join();
    for (const auto& k : got)
      CHECK(k == got[0]);
  }

} // TEST_SUITE

// NVRTC on the CPU: CUBIN out, lowered names, ptxas resources, errors that carry the log, dumps.
#include "runtime/nvrtc_compiler.h"

#include <attnjit/error.h>

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

using namespace attnjit;
using namespace attnjit::runtime;
namespace fs = std::filesystem;

namespace {

// Reads a template header through the embedded copy, and takes its block size as a template
// argument like the real kernels do.
constexpr const char* kGoodSource = R"(
#include <attnjit/fwd_params.h>

namespace demo {
template <int kThreads, class T>
__global__ void __launch_bounds__(kThreads) scale(T* out, const T* in, attnjit::FwdParams params) {
  __shared__ T staged[kThreads];
  const int i = blockIdx.x * kThreads + threadIdx.x;
  staged[threadIdx.x] = in[i];
  __syncthreads();
  out[i] = staged[kThreads - 1 - threadIdx.x] * params.softmax_scale + T(params.seqlen_q);
}
} // namespace demo
)";
constexpr const char* kGoodName = "demo::scale<128, float>";

constexpr const char* kBadSource = R"(
__global__ void broken(float* out) {
  out[threadIdx.x] = 1.0f
}
)";

CompileRequest good_request(const std::string& arch) {
  return CompileRequest{kGoodSource, "demo_scale", {kGoodName}, arch, {}};
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A fresh folder under the temp directory, removed with everything in it at scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "attnjit-test-XXXXXX").string();
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::vector<fs::path> subfolders(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory()) out.push_back(e.path());
  return out;
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

// The folder named on the "  source: <folder>" line of a compile error.
fs::path source_folder_in(const std::string& message) {
  const std::string key = "source: ";
  const size_t at = message.find(key);
  if (at == std::string::npos) return {};
  const size_t begin = at + key.size();
  return message.substr(begin, message.find('\n', begin) - begin);
}

} // namespace

TEST_SUITE("runtime.nvrtc") {

  TEST_CASE("compiles a templated kernel to CUBIN with lowered names and resources") {
    for (const char* arch : {"sm_80", "sm_90a"}) {
      CAPTURE(arch);
      const CompiledProgram program = compile(good_request(arch));
      CAPTURE(program.log);
      REQUIRE(program.cubin.size() > 4);
      CHECK(std::string(program.cubin.data(), 4) == "\x7f"
                                                    "ELF");

      REQUIRE(program.lowered_names.size() == 1);
      CHECK(program.lowered_names[0].starts_with("_Z"));
      CHECK(program.options == default_options(arch));
      CHECK(program.log.find(std::string("for '") + arch + "'") != std::string::npos);
      CHECK(program.compile_ms > 0);

      REQUIRE(program.resources.size() == 1);
      const ResourceUsage& r = program.resources[0];
      CHECK(r.kernel == program.lowered_names[0]);
      CHECK(r.registers > 0);
      CHECK(r.static_smem_bytes == 128 * 4);
      CHECK(r.spill_store_bytes == 0);
      CHECK(r.spill_load_bytes == 0);
    }
  }

  TEST_CASE("default options are accepted and extra options are appended") {
    const std::vector<std::string> expected{"--gpu-architecture=sm_90a", "-std=c++17",
                                            "--ptxas-options=--verbose", "--no-cache", "-DNDEBUG"};
    CHECK(default_options("sm_90a") == expected);

    CompileRequest request = good_request("sm_80");
    request.extra_options = {"-DATTNJIT_TEST_FLAG=1", "--maxrregcount=32"};
    const CompiledProgram program = compile(request);
    CAPTURE(program.log);
    REQUIRE(program.options.size() == expected.size() + 2);
    CHECK(program.options.back() == "--maxrregcount=32");
    REQUIRE(program.resources.size() == 1);
    CHECK(program.resources[0].registers <= 32);
  }

  TEST_CASE("a syntax error throws Error(compile) with the log, the options and the saved source") {
    CompileRequest request{kBadSource, "demo_broken", {"broken"}, "sm_80", {"-DMARKER_OPTION=7"}};
    const Error e = caught_error([&] { compile(request); });
    CHECK(e.kind() == ErrorKind::compile);
    const std::string message = e.what();
    CAPTURE(message);
    CHECK(message.find("demo_broken") != std::string::npos);
    CHECK(message.find("sm_80") != std::string::npos);
    CHECK(message.find("-DMARKER_OPTION=7") != std::string::npos);
    CHECK(message.find("--gpu-architecture=sm_80") != std::string::npos);
    // NVRTC's own diagnostic, pointing at the line of the missing semicolon.
    CHECK(message.find("kernel.cu(4): error") != std::string::npos);

    // Without a dump folder the failing source still lands somewhere to inspect.
    const fs::path saved = source_folder_in(message);
    REQUIRE(!saved.empty());
    CHECK(saved.filename().string().starts_with("attnjit-failed-"));
    CHECK(read_text(saved / "kernel.cu") == kBadSource);
    CHECK(read_text(saved / "log.txt").find("error") != std::string::npos);
    std::error_code ec;
    fs::remove_all(saved, ec);
  }

  TEST_CASE("a virtual architecture is refused") {
    const Error e = caught_error([] { compile(good_request("compute_90")); });
    CHECK(e.kind() == ErrorKind::invalid_argument);
    CHECK(std::string(e.what()).find("compute_90") != std::string::npos);
    CHECK(caught_error([] { compile(good_request("")); }).kind() == ErrorKind::invalid_argument);
  }

  TEST_CASE("a dump folder gets the source, options, log and cubin") {
    TempDir dir;
    const CompiledProgram program = compile(good_request("sm_90a"), dir.path.string());
    const auto folders = subfolders(dir.path);
    REQUIRE(folders.size() == 1);
    const fs::path dump = folders[0];
    const std::string name = dump.filename().string();
    CHECK(name.starts_with("demo_scale-"));
    CHECK(name.size() == std::string("demo_scale-").size() + 16);

    CHECK(read_text(dump / "kernel.cu") == kGoodSource);
    CHECK(
        read_text(dump / "options.txt") ==
        "--gpu-architecture=sm_90a\n-std=c++17\n--ptxas-options=--verbose\n--no-cache\n-DNDEBUG\n");
    CHECK(read_text(dump / "log.txt") == program.log);
    const std::string cubin = read_text(dump / "kernel.cubin");
    CHECK(cubin == std::string(program.cubin.data(), program.cubin.size()));
    // Temporary files were all renamed into place.
    int files = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(dump))
      ++files;
    CHECK(files == 4);

    // The same request lands in the same folder; a different arch in another.
    compile(good_request("sm_90a"), dir.path.string());
    CHECK(subfolders(dir.path).size() == 1);
    compile(good_request("sm_80"), dir.path.string());
    CHECK(subfolders(dir.path).size() == 2);
  }

  TEST_CASE("a failing compile with a dump folder names it and leaves the log there") {
    TempDir dir;
    CompileRequest request{kBadSource, "demo_broken", {"broken"}, "sm_90a", {}};
    const Error e = caught_error([&] { compile(request, dir.path.string()); });
    CHECK(e.kind() == ErrorKind::compile);
    const auto folders = subfolders(dir.path);
    REQUIRE(folders.size() == 1);
    CHECK(source_folder_in(e.what()) == folders[0]);
    CHECK(read_text(folders[0] / "kernel.cu") == kBadSource);
    CHECK(read_text(folders[0] / "log.txt").find("error") != std::string::npos);
    CHECK(!fs::exists(folders[0] / "kernel.cubin"));
  }

  TEST_CASE("ATTNJIT_DUMP_DIR turns dumping on") {
    TempDir dir;
    REQUIRE(setenv("ATTNJIT_DUMP_DIR", dir.path.c_str(), 1) == 0);
    compile(good_request("sm_80"));
    unsetenv("ATTNJIT_DUMP_DIR");
    const auto folders = subfolders(dir.path);
    REQUIRE(folders.size() == 1);
    CHECK(fs::exists(folders[0] / "kernel.cubin"));
  }

  TEST_CASE("an unwritable dump folder is Error(internal) naming the path") {
    TempDir dir;
    const fs::path blocker = dir.path / "not-a-folder";
    std::ofstream(blocker) << "a file where the dump folder should go";
    const Error e =
        caught_error([&] { compile(good_request("sm_80"), (blocker / "dumps").string()); });
    CHECK(e.kind() == ErrorKind::internal);
    CHECK(std::string(e.what()).find(blocker.string()) != std::string::npos);
  }

  TEST_CASE("ptxas verbose output parses per entry function") {
    // NVRTC 13 log for an entry that spills and calls a non-inlined device function.
    const std::string log =
        "ptxas info    : Overriding maximum register limit 256 for '_Z5spillPfi' with  32 of "
        "maxrregcount option\n"
        "ptxas info    : 0 bytes gmem\n"
        "ptxas info    : Compiling entry function '_Z5spillPfi' for 'sm_90a'\n"
        "ptxas info    : Function properties for _Z5spillPfi\n"
        "ptxas         .     1376 bytes stack frame, 1240 bytes spill stores, 2288 bytes spill "
        "loads\n"
        "ptxas info    : Used 32 registers, used 0 barriers, 1376 bytes cumulative stack size\n"
        "ptxas info    : Compile time = 89.570 ms\n"
        "ptxas info    : Compiling entry function '_Z4kernILi128EfEvPT0_PKS0_' for 'sm_80'\n"
        "ptxas info    : Function properties for _Z4kernILi128EfEvPT0_PKS0_\n"
        "ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n"
        "ptxas info    : Used 12 registers, used 1 barriers, 512 bytes smem, 368 bytes cmem[0]\n"
        "ptxas info    : Compile time = 3.414 ms\n"
        "ptxas info    : Function properties for _Z1fPfi\n"
        "ptxas         .     64 bytes stack frame, 8 bytes spill stores, 8 bytes spill loads\n";
    const auto r = parse_ptxas_resources(log);
    REQUIRE(r.size() == 2);
    CHECK(r[0].kernel == "_Z5spillPfi");
    CHECK(r[0].registers == 32);
    CHECK(r[0].stack_bytes == 1376);
    CHECK(r[0].spill_store_bytes == 1240);
    CHECK(r[0].spill_load_bytes == 2288);
    CHECK(r[0].static_smem_bytes == 0);
    CHECK(r[1].kernel == "_Z4kernILi128EfEvPT0_PKS0_");
    CHECK(r[1].registers == 12);
    CHECK(r[1].static_smem_bytes == 512);
    CHECK(r[1].stack_bytes == 0);

    // Missing lines leave zeros; unrelated text yields nothing.
    const auto partial =
        parse_ptxas_resources("ptxas info    : Compiling entry function '_Z1kv' for 'sm_80'\r\n");
    REQUIRE(partial.size() == 1);
    CHECK(partial[0].kernel == "_Z1kv");
    CHECK(partial[0].registers == 0);
    CHECK(parse_ptxas_resources("kernel.cu(3): error: expected a \";\"\n").empty());
    CHECK(parse_ptxas_resources("").empty());
  }

} // TEST_SUITE

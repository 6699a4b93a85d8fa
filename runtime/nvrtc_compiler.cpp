#include "runtime/nvrtc_compiler.h"

#include <attnjit/error.h>

#include "codegen/embedded_templates.h"

#include <fmt/format.h>
#include <fmt/ranges.h> // fmt::join moved here in fmt 11
#include <nvrtc.h>

#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <system_error>

namespace attnjit::runtime {
namespace fs = std::filesystem;
namespace {

// The name NVRTC gives the source in its log ("kernel.cu(12): error: ..."), matching the file
// that dumps and failure folders hold, so log lines point at a file the user can open.
constexpr const char* kSourceName = "kernel.cu";

std::string describe_request(const CompileRequest& request) {
  return fmt::format("{} ({})",
                     request.program_name.empty() ? "<unnamed program>" : request.program_name,
                     request.arch);
}

void check_nvrtc(nvrtcResult result, const char* what, const CompileRequest& request) {
  if (result == NVRTC_SUCCESS) return;
  throw Error(ErrorKind::compile,
              fmt::format("NVRTC failed for {}: {}: {}", describe_request(request), what,
                          nvrtcGetErrorString(result)));
}
#define ATTNJIT_NVRTC(call) check_nvrtc((call), #call, request)

struct Program {
  nvrtcProgram handle = nullptr;
  Program() = default;
  Program(const Program&) = delete;
  Program& operator=(const Program&) = delete;
  ~Program() {
    if (handle != nullptr) nvrtcDestroyProgram(&handle);
  }
};

void validate_arch(const CompileRequest& request) {
  const std::string& arch = request.arch;
  if (arch.starts_with("compute_"))
    throw Error(ErrorKind::invalid_argument,
                fmt::format("cannot compile {}: '{}' is a virtual architecture, but attnjit "
                            "compiles to CUBIN and needs a real one such as sm_{}",
                            describe_request(request), arch, arch.substr(8)));
  if (!arch.starts_with("sm_") || arch.size() == 3)
    throw Error(ErrorKind::invalid_argument,
                fmt::format("cannot compile {}: '{}' is not a GPU architecture; expected sm_XY "
                            "such as sm_80 or sm_90a",
                            describe_request(request), arch));
}

// ---- dumps ---------------------------------------------------------------------------------

// FNV-1a: stable across runs and builds (unlike std::hash), which is what a folder name needs.
struct Fnv1a {
  uint64_t value = 1469598103934665603ull;
  void add(std::string_view bytes) {
    for (unsigned char c : bytes)
      value = (value ^ c) * 1099511628211ull;
    value = (value ^ 0xff) * 1099511628211ull; // field separator: ("ab","c") != ("a","bc")
  }
};

std::string request_hash(const CompileRequest& request, const std::vector<std::string>& options) {
  Fnv1a h;
  h.add(request.source);
  for (const auto& o : options)
    h.add(o);
  for (const auto& n : request.name_expressions)
    h.add(n);
  h.add(codegen::template_hash()); // the headers are part of what was compiled
  return fmt::format("{:016x}", h.value);
}

std::string folder_safe(const std::string& name) {
  std::string out = name.empty() ? std::string("program") : name;
  for (char& c : out)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) c = '_';
  return out;
}

// Readers (and a concurrent compile of the same request) never see a half-written file.
void write_file_atomically(const fs::path& path, std::string_view content) {
  static std::atomic<unsigned> counter{0};
  const fs::path temp = path.string() + fmt::format(".tmp-{}-{}", getpid(), counter++);
  std::FILE* f = std::fopen(temp.c_str(), "wb");
  bool ok = f != nullptr;
  int err = ok ? 0 : errno;
  if (ok && !content.empty() &&
      std::fwrite(content.data(), 1, content.size(), f) != content.size()) {
    ok = false;
    err = errno;
  }
  if (f != nullptr && std::fclose(f) != 0 && ok) {
    ok = false;
    err = errno;
  }
  std::error_code ec;
  if (ok) {
    fs::rename(temp, path, ec);
    if (ec) ok = false;
  }
  if (!ok) {
    fs::remove(temp, ec);
    const std::string why = err != 0 ? std::generic_category().message(err) : "rename failed";
    throw Error(ErrorKind::internal,
                fmt::format("cannot write NVRTC dump file {}: {}", path.string(), why));
  }
}

void create_folder(const fs::path& folder) {
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec)
    throw Error(ErrorKind::internal, fmt::format("cannot create NVRTC dump folder {}: {}",
                                                 folder.string(), ec.message()));
}

std::string options_text(const std::vector<std::string>& options) {
  std::string text;
  for (const auto& o : options)
    text += o + "\n";
  return text;
}

// When no dump was asked for, a failing compile still leaves its source somewhere to look at.
// Returns the folder, or why there is none: this runs while reporting another error.
std::string save_failed_compile(const CompileRequest& request,
                                const std::vector<std::string>& options, const std::string& log) {
  std::error_code ec;
  fs::path base = fs::temp_directory_path(ec);
  if (ec) base = "/tmp";
  std::string pattern = (base / "attnjit-failed-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr)
    return fmt::format("(not saved: cannot create {}: {})", pattern,
                       std::generic_category().message(errno));
  try {
    const fs::path folder = pattern;
    write_file_atomically(folder / kSourceName, request.source);
    write_file_atomically(folder / "options.txt", options_text(options));
    write_file_atomically(folder / "log.txt", log);
    return folder.string();
  } catch (const Error& e) {
    return fmt::format("(not saved: {})", e.what());
  }
}

std::string dump_root(const std::string& dump_dir) {
  if (!dump_dir.empty()) return dump_dir;
  const char* env = std::getenv("ATTNJIT_DUMP_DIR");
  return env != nullptr ? std::string(env) : std::string();
}

// ---- ptxas log -----------------------------------------------------------------------------

// The integer just before `suffix` in `line` ("Used 14 registers" with " registers" -> 14).
int number_before(std::string_view line, std::string_view suffix) {
  const size_t at = line.find(suffix);
  if (at == std::string_view::npos) return 0;
  size_t begin = at;
  while (begin > 0 && std::isdigit(static_cast<unsigned char>(line[begin - 1])))
    --begin;
  if (begin == at) return 0;
  long value = std::strtol(std::string(line.substr(begin, at - begin)).c_str(), nullptr, 10);
  return value > INT32_MAX ? INT32_MAX : int(value);
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
    s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
    s.remove_suffix(1);
  return s;
}

} // namespace

std::vector<ResourceUsage> parse_ptxas_resources(std::string_view log) {
  // NVRTC 13 logs, per entry function, in this order:
  //   ptxas info    : Compiling entry function '_Z4kern...' for 'sm_90a'
  //   ptxas info    : Function properties for _Z4kern...
  //   ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
  //   ptxas info    : Used 14 registers, used 1 barriers, 512 bytes smem[, 368 bytes cmem[0]]
  // Non-inlined device functions get "Function properties" blocks too, anywhere in the log, so
  // stack/spill lines are matched to entries by name, not by position.
  std::vector<ResourceUsage> out;
  constexpr std::string_view kEntry = "Compiling entry function '";
  constexpr std::string_view kProperties = "Function properties for ";
  long current = -1;      // entry that the next "Used N registers" line belongs to
  std::string properties; // function that the next stack/spill line belongs to
  auto entry_named = [&](std::string_view name) -> ResourceUsage* {
    for (auto& r : out)
      if (r.kernel == name) return &r;
    return nullptr;
  };

  while (!log.empty()) {
    const size_t eol = log.find('\n');
    const std::string_view line = log.substr(0, eol);
    log = eol == std::string_view::npos ? std::string_view() : log.substr(eol + 1);
    if (line.find("ptxas") == std::string_view::npos) continue;

    if (size_t at = line.find(kEntry); at != std::string_view::npos) {
      std::string_view name = line.substr(at + kEntry.size());
      name = name.substr(0, name.find('\''));
      if (ResourceUsage* existing = entry_named(name)) {
        current = existing - out.data();
      } else {
        out.push_back(ResourceUsage{std::string(name)});
        current = long(out.size()) - 1;
      }
    } else if (line.find("Compiling ") != std::string_view::npos) {
      current = -1; // some other kind of function: its register line is not an entry's
    } else if (size_t at = line.find(kProperties); at != std::string_view::npos) {
      properties = std::string(trim(line.substr(at + kProperties.size())));
    } else if (line.find("bytes stack frame") != std::string_view::npos) {
      if (ResourceUsage* r = entry_named(properties)) {
        r->stack_bytes = number_before(line, " bytes stack frame");
        r->spill_store_bytes = number_before(line, " bytes spill stores");
        r->spill_load_bytes = number_before(line, " bytes spill loads");
      }
      properties.clear();
    } else if (line.find(" registers") != std::string_view::npos && current >= 0) {
      ResourceUsage& r = out[size_t(current)];
      r.registers = number_before(line, " registers");
      r.static_smem_bytes = number_before(line, " bytes smem");
    }
  }
  return out;
}

std::vector<std::string> default_options(const std::string& arch) {
  return {
      "--gpu-architecture=" + arch,
      "-std=c++17",
      "--ptxas-options=--verbose", // resources and spills reach the log: known without a GPU
      // NVRTC 12.9+ keeps its own cache in the driver's compute cache (only where libcuda loads);
      // a hit skips ptxas and so leaves no resource lines in the log. attnjit caches CUBINs itself.
      "--no-cache",
      "-DNDEBUG",
  };
}

CompiledProgram compile(const CompileRequest& request, const std::string& dump_dir) {
  validate_arch(request);
  const auto start = std::chrono::steady_clock::now();

  CompiledProgram out;
  out.options = default_options(request.arch);
  out.options.insert(out.options.end(), request.extra_options.begin(), request.extra_options.end());

  fs::path dump;
  if (const std::string root = dump_root(dump_dir); !root.empty()) {
    dump = fs::path(root) / fmt::format("{}-{}", folder_safe(request.program_name),
                                        request_hash(request, out.options));
    create_folder(dump);
    // Before compiling, so a compile that crashes NVRTC still leaves its input behind.
    write_file_atomically(dump / kSourceName, request.source);
    write_file_atomically(dump / "options.txt", options_text(out.options));
  }

  const auto& templates = codegen::embedded_templates();
  std::vector<const char*> header_names, header_contents;
  for (const auto& t : templates) {
    header_names.push_back(t.name);
    header_contents.push_back(t.content);
  }
  std::vector<const char*> option_ptrs;
  for (const auto& o : out.options)
    option_ptrs.push_back(o.c_str());

  Program program;
  ATTNJIT_NVRTC(nvrtcCreateProgram(&program.handle, request.source.c_str(), kSourceName,
                                   int(header_names.size()), header_contents.data(),
                                   header_names.data()));
  for (const auto& name : request.name_expressions)
    check_nvrtc(nvrtcAddNameExpression(program.handle, name.c_str()),
                fmt::format("nvrtcAddNameExpression(\"{}\")", name).c_str(), request);

  const nvrtcResult compiled =
      nvrtcCompileProgram(program.handle, int(option_ptrs.size()), option_ptrs.data());

  size_t log_size = 0;
  ATTNJIT_NVRTC(nvrtcGetProgramLogSize(program.handle, &log_size));
  out.log.assign(log_size, '\0');
  if (log_size > 0) ATTNJIT_NVRTC(nvrtcGetProgramLog(program.handle, out.log.data()));
  while (!out.log.empty() && out.log.back() == '\0')
    out.log.pop_back();
  if (!dump.empty()) write_file_atomically(dump / "log.txt", out.log);

  if (compiled != NVRTC_SUCCESS) {
    const std::string saved =
        dump.empty() ? save_failed_compile(request, out.options, out.log) : dump.string();
    throw Error(ErrorKind::compile,
                fmt::format("NVRTC could not compile {}: {}\n  options: {}\n  source: {}\n"
                            "  log:\n{}",
                            describe_request(request), nvrtcGetErrorString(compiled),
                            fmt::join(out.options, " "), saved, out.log));
  }

  size_t cubin_size = 0;
  ATTNJIT_NVRTC(nvrtcGetCUBINSize(program.handle, &cubin_size));
  out.cubin.resize(cubin_size);
  if (cubin_size > 0) ATTNJIT_NVRTC(nvrtcGetCUBIN(program.handle, out.cubin.data()));
  if (cubin_size == 0)
    throw Error(ErrorKind::compile,
                fmt::format("NVRTC produced no CUBIN for {} with options {}",
                            describe_request(request), fmt::join(out.options, " ")));

  for (const auto& name : request.name_expressions) {
    const char* lowered = nullptr;
    check_nvrtc(nvrtcGetLoweredName(program.handle, name.c_str(), &lowered),
                fmt::format("nvrtcGetLoweredName(\"{}\")", name).c_str(), request);
    out.lowered_names.emplace_back(lowered);
  }
  out.resources = parse_ptxas_resources(out.log);
  out.compile_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();

  if (!dump.empty())
    write_file_atomically(dump / "kernel.cubin",
                          std::string_view(out.cubin.data(), out.cubin.size()));
  return out;
}

} // namespace attnjit::runtime

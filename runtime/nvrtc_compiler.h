// NVRTC: generated source + embedded templates -> CUBIN for one architecture.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace attnjit::runtime {

struct CompileRequest {
  std::string source;                        // the generated kernel.cu
  std::string program_name;                  // kernel slug, used for the dump folder and in errors
  std::vector<std::string> name_expressions; // kernels to instantiate (nvrtcAddNameExpression)
  std::string arch;                          // "sm_80", "sm_90a", ...
  std::vector<std::string> extra_options;
};

// What ptxas reported for one kernel (NVRTC run with --ptxas-options=--verbose), so resources
// and spills are known without a GPU.
struct ResourceUsage {
  std::string kernel; // lowered name
  int registers = 0;
  int spill_store_bytes = 0, spill_load_bytes = 0;
  int stack_bytes = 0;
  int static_smem_bytes = 0;
};

struct CompiledProgram {
  std::vector<char> cubin;
  std::vector<std::string> lowered_names; // one per name expression, for cuModuleGetFunction
  std::vector<std::string> options;       // exactly as passed to NVRTC
  std::string log;
  std::vector<ResourceUsage> resources; // parsed from the log, one per kernel
  double compile_ms = 0;
};

// Compiles to CUBIN (never PTX), serving templates/ as in-memory headers. Throws
// Error(invalid_argument) for a virtual arch (compute_XY), and Error(compile) with NVRTC's log, the
// options and where the source was saved: the dump folder, else a fresh
// $TMPDIR/attnjit-failed-XXXXXX. When `dump_dir` is non-empty (or ATTNJIT_DUMP_DIR is set) every
// compile leaves <dir>/<program_name>-<hash>/{kernel.cu, options.txt, log.txt, kernel.cubin}, each
// written via temp file + rename.
CompiledProgram compile(const CompileRequest& request, const std::string& dump_dir = "");

// Per-entry-function resources from ptxas --verbose output as NVRTC 13 logs it; lines it does not
// recognise are skipped and fields it cannot find stay 0.
std::vector<ResourceUsage> parse_ptxas_resources(std::string_view log);

// Options every attnjit compile uses for `arch` (also part of the binary-cache key).
std::vector<std::string> default_options(const std::string& arch);

} // namespace attnjit::runtime

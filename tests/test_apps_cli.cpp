// The `attnjit` binary as a user sees it: help, the generated source, and validation errors as
// messages with a non-zero exit. None of these need a GPU; `run` and `info` are tried only with
// ATTNJIT_LIBCUDA pointing nowhere, which makes any machine look like one without a driver.
#include "codegen/codegen.h"
#include "codegen/tile_rules.h"

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <string>
#include <sys/wait.h>

namespace {

struct CliResult {
  int exit_code = -1;
  std::string output; // stdout and stderr together
};

// Runs `attnjit <args>` through the shell. The arguments are ours, never user input.
CliResult run_cli(const std::string& args, const std::string& env = "") {
  const std::string command = env + " '" ATTNJIT_CLI_PATH "' " + args + " 2>&1";
  CliResult result;
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE_MESSAGE(pipe != nullptr, "popen failed: ", command);
  char buffer[4096];
  while (size_t n = fread(buffer, 1, sizeof buffer, pipe))
    result.output.append(buffer, n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

bool contains(const std::string& text, const std::string& piece) {
  return text.find(piece) != std::string::npos;
}

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return char(std::tolower(c)); });
  return text;
}

// A run that must fail: non-zero exit, one "attnjit: error:" line naming `what`.
void check_fails_naming(const std::string& args, const std::string& what) {
  const CliResult r = run_cli(args);
  INFO("attnjit ", args, "\n", r.output);
  CHECK(r.exit_code != 0);
  CHECK(contains(r.output, "attnjit: error:"));
  CHECK(contains(lower(r.output), what));
}

// Simulates a machine without a driver, even on a GPU host.
const std::string kNoDriver = "ATTNJIT_LIBCUDA=/nonexistent/libcuda.so.1";

} // namespace

TEST_SUITE("apps.cli") {
  TEST_CASE("--help lists the subcommands and hides LLVM's own flags") {
    const CliResult r = run_cli("--help");
    INFO(r.output);
    CHECK(r.exit_code == 0);
    for (const char* sub : {"info", "gen", "compile", "run"})
      CHECK(contains(r.output, std::string("  ") + sub + " "));
    // Flags LLVM Support registers for its own tools.
    for (const char* llvm_flag : {"--color", "--debug-counter", "--rng-seed", "--time-passes",
                                  "--info-output-file", "--track-memory", "--stats"})
      CHECK_FALSE(contains(r.output, llvm_flag));
  }

  TEST_CASE("a subcommand is required") {
    const CliResult r = run_cli("");
    CHECK(r.exit_code != 0);
    CHECK(contains(r.output, "SUBCOMMANDS"));
  }

  TEST_CASE("an unknown subcommand is an error") {
    const CliResult r = run_cli("frobnicate");
    INFO(r.output);
    CHECK(r.exit_code != 0);
    CHECK(contains(r.output, "attnjit: error: unknown subcommand 'frobnicate'"));
  }

  TEST_CASE("gen prints the generated source of the default problem") {
    using namespace attnjit;
    const KernelSpec spec; // the CLI's defaults are the aggregate's
    const auto expected = codegen::generate_forward(
        spec, codegen::default_config(spec, codegen::arch_limits("sm_90a")));
    const CliResult r = run_cli("gen");
    INFO(r.output);
    CHECK(r.exit_code == 0);
    CHECK(r.output == expected.source);
    CHECK(contains(r.output, "#include <attnjit/fwd_ws_kernel.cuh>")); // sm_90a's default
    CHECK(contains(r.output, expected.name_expression));
  }

  TEST_CASE("gen and compile --pass=bwd: the backward's program, warp-specialized on sm_90a") {
    using namespace attnjit;
    KernelSpec spec;
    spec.pass = Pass::backward;
    spec.num_kv_heads = 8;
    const auto expected = codegen::generate_backward(
        spec, codegen::default_config(spec, codegen::arch_limits("sm_90a")));
    const CliResult r = run_cli("gen --pass=bwd --kv-heads=8");
    INFO(r.output);
    CHECK(r.exit_code == 0);
    CHECK(r.output == expected.source);
    CHECK(contains(r.output, "#include <attnjit/bwd_ws_kernel.cuh>"));
    const CliResult c = run_cli("compile --pass=bwd --kv-heads=8 --arch=sm_90a");
    INFO(c.output);
    CHECK(c.exit_code == 0);
    CHECK(contains(c.output, "bwd_gqa_d128"));
    CHECK(contains(c.output, "kernel     bwd_gqa_d128_bf16_m64n128w12s3_wgmma_ws"));
    CHECK(contains(c.output, "384 threads per CTA"));
    // The backward's own limits, in the same words as the API's.
    const CliResult bad = run_cli("gen --pass=bwd --head-dim=512");
    CHECK(bad.exit_code != 0);
  }

  TEST_CASE("gen applies tile flags on top of the default config") {
    const CliResult r =
        run_cli("gen --head-dim=64 --block-m=128 --block-n=64 --warps=8 --wgmma=false --causal");
    INFO(r.output);
    CHECK(r.exit_code == 0);
    CHECK(contains(r.output, "#include <attnjit/fwd_kernel.cuh>"));
    CHECK(contains(r.output, "/*NUM_WARPS=*/8"));
    CHECK(contains(r.output, "/*HEAD_DIM_QK=*/64"));
    CHECK(contains(r.output, "/*CAUSAL=*/true"));
    const CliResult hopper = run_cli("gen --block-m=128 --warps=8 --block-n=128 --wgmma");
    INFO(hopper.output);
    CHECK(hopper.exit_code == 0);
    CHECK(contains(hopper.output, "/*BLOCK_M=*/128"));
    CHECK(contains(hopper.output, "m64n128k16"));
    CHECK(contains(hopper.output, "#include <attnjit/fwd_wgmma_kernel.cuh>")); // --wgmma alone
    // A flag that breaks the default's rules is refused with the rule, not silently changed.
    const CliResult broken = run_cli("gen --warps=8");
    CHECK(broken.exit_code != 0);
    CHECK(contains(broken.output, "warpgroup owns 64 rows"));
  }

  TEST_CASE("gen, compile and run list every tile flag, --wgmma and --warp-specialized included") {
    for (const char* sub : {"gen", "compile", "run"}) {
      const CliResult r = run_cli(std::string(sub) + " --help");
      INFO(sub, " --help\n", r.output);
      CHECK(r.exit_code == 0);
      for (const char* flag : {"--block-m", "--block-n", "--warps", "--stages", "--q-in-regs",
                               "--wgmma", "--warp-specialized"})
        CHECK(contains(r.output, flag));
    }
    // A tile flag picks a config, which tune refuses: --wgmma and --warp-specialized among them.
    check_fails_naming("tune --dry-run --wgmma", "tile flags");
    check_fails_naming("tune --dry-run --warp-specialized", "tile flags");
    check_fails_naming("tune --dry-run --warp-specialized=false", "tile flags");
  }

  TEST_CASE("--warp-specialized reaches the config") {
    // sm_90a's default is warp-specialized: the flag alone changes nothing; =false (with the
    // all-loading kernel's warps for the default's 128 rows) switches it off.
    const CliResult plain = run_cli("gen");
    CHECK(contains(plain.output, "_wgmma_ws"));
    CHECK(run_cli("gen --warp-specialized").output == plain.output);
    const CliResult off = run_cli("gen --warp-specialized=false --warps=8");
    INFO(off.output);
    CHECK(off.exit_code == 0);
    CHECK(contains(off.output, "_m128n128w8s2_wgmma\n"));
    CHECK(run_cli("gen --wgmma --warps=8").output == off.output); // --wgmma alone: the same
    // On, it shows in the kernel's slug (`_wgmma_ws`) when the config is generated, or in the
    // config's text (`wgmma ws`) when the tile rules refuse it: either way the flag got there.
    const CliResult on = run_cli("gen --warp-specialized --warps=12 --block-m=128 --block-n=128");
    INFO(on.output);
    CHECK((contains(on.output, "_m128n128w12s") || contains(on.output, "block_m=128 block_n=128 "
                                                                       "warps=12 stages=")));
    CHECK((contains(on.output, "_wgmma_ws") || contains(on.output, " wgmma ws")));
  }

  TEST_CASE("invalid problems fail with a message naming the field") {
    check_fails_naming("gen --head-dim=100", "head dim 100");
    check_fails_naming("gen --heads=6 --kv-heads=4", "num_kv_heads");
    check_fails_naming("gen --batch=0", "batch");
    check_fails_naming("gen --seqlen=-5", "seqlen");
    check_fails_naming("compile --heads=-1", "num_heads");
    check_fails_naming("run --batch=0", "batch"); // validated before any device work
  }

  TEST_CASE("malformed flags are rejected by the parser") {
    for (const char* args : {"gen --dtype=fp32", "gen --batch=many", "gen --no-such-flag",
                             "gen --wgmma=maybe", "gen --warp-specialized=maybe"}) {
      const CliResult r = run_cli(args);
      INFO("attnjit ", args, "\n", r.output);
      CHECK(r.exit_code != 0);
    }
  }

  TEST_CASE("compile --arch=sm_80 works without a GPU and reports registers") {
    const CliResult r = run_cli("compile --arch=sm_80 --head-dim=64");
    INFO(r.output);
    CHECK(r.exit_code == 0);
    CHECK(contains(r.output, "arch       sm_80"));
    CHECK(contains(r.output, "registers"));
    CHECK(contains(r.output, "cubin"));
  }

  TEST_CASE("compile: absorbed MLA 576/512 with V read from K, without spills") {
    for (const char* arch : {"sm_80", "sm_90a"}) {
      const CliResult r = run_cli(fmt::format("compile --arch={} --head-dim=576 --head-dim-v=512 "
                                              "--heads=128 --kv-heads=1 --layout=v-in-k --causal",
                                              arch));
      INFO(r.output);
      CHECK(r.exit_code == 0);
      CHECK(contains(r.output, "fwd_mla_d576x512_vink_bf16_causal_m64n"));
      CHECK(contains(r.output, "spills     0 B stored, 0 B loaded"));
    }
  }

  TEST_CASE("without a driver, run compiles for sm_90a and says why it stops") {
    const CliResult r = run_cli("run --seqlen=256 --head-dim=64", kNoDriver);
    INFO(r.output);
    CHECK(r.exit_code == 0);
    CHECK(contains(r.output, "no GPU: "));
    CHECK(contains(r.output, "for sm_90a but cannot run it"));
    CHECK(contains(r.output, "registers"));
  }

  TEST_CASE("without a driver, info prints the versions, then fails") {
    const CliResult r = run_cli("info", kNoDriver);
    INFO(r.output);
    CHECK(r.exit_code != 0);
    CHECK(contains(r.output, "attnjit    " ATTNJIT_VERSION));
    CHECK(contains(r.output, "nvrtc"));
    CHECK(contains(r.output, "attnjit: error:"));
    CHECK(contains(r.output, "/nonexistent/libcuda.so.1"));
  }
}

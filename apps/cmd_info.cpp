// `attnjit info`: what this build is and which GPU it would run on. The GPU-independent lines
// come first, so a machine without a driver still learns the versions before the error.
#include "apps/subcommand.h"
#include "codegen/embedded_templates.h"

#include <attnjit/device.h>

#include <fmt/format.h>

#include <cstdio>

using namespace llvm;

namespace attnjit::apps {
namespace {

cl::SubCommand Info("info", "Show attnjit, NVRTC and GPU versions and limits");
cl::opt<int> Device("device", cl::desc("GPU ordinal"), cl::init(0), cl::sub(Info),
                    cl::cat(category()));

// 13000 -> "13.0", the way nvidia-smi prints CUDA versions.
std::string cuda_version(int version) {
  return fmt::format("{}.{}", version / 1000, version % 1000 / 10);
}

int run_info() {
  fmt::print("attnjit    {}\n", ATTNJIT_VERSION);
  fmt::print("templates  {} (hash)\n", codegen::template_hash());
  fmt::print("nvrtc      {}\n", nvrtc_version());
  std::fflush(stdout); // before any error on stderr, so the two read in order

  const DeviceInfo device = query_device(Device); // throws Error(no_device) saying why
  fmt::print("gpu        {} (device {} of {})\n", device.name, device.ordinal, device_count());
  fmt::print("compute    {}.{}, NVRTC arch {}\n", device.cc_major, device.cc_minor, device.arch());
  fmt::print("sms        {}\n", device.sm_count);
  fmt::print("smem       {} B per block (opt-in)\n", device.max_smem_per_block);
  fmt::print("registers  {} per block\n", device.max_regs_per_block);
  fmt::print("l2         {:.1f} MiB (sizes the causal forward's head groups)\n",
             device.l2_bytes / double(1 << 20));
  fmt::print("memory     {:.1f} GiB\n", device.total_memory / double(1 << 30));
  fmt::print("driver     CUDA {} ({})\n", cuda_version(device.driver_version),
             device.driver_version);
  return 0;
}

Registration registration(Info, run_info);

} // namespace
} // namespace attnjit::apps

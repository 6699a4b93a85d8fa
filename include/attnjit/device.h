// The GPU as the library sees it. Everything here goes through the dlopen'd driver:
// on a machine without one it throws Error(no_device) saying why.
#pragma once

#include <string>

namespace attnjit {

struct DeviceInfo {
  int ordinal = 0;
  std::string name; // e.g. "NVIDIA H100 80GB HBM3"
  int cc_major = 0, cc_minor = 0;
  int sm_count = 0;
  int max_smem_per_block = 0; // opt-in limit, bytes
  int max_regs_per_block = 0;
  long long l2_bytes = 0;     // L2 cache
  long long total_memory = 0; // bytes
  int driver_version = 0;     // e.g. 13000
  // NVRTC target for this device: "sm_90a" on Hopper (wgmma needs the 'a' variant), else "sm_XY".
  std::string arch() const;
};

// The NVRTC target for compute capability major.minor, as DeviceInfo::arch() picks it.
std::string arch_for(int cc_major, int cc_minor);

DeviceInfo query_device(int ordinal = 0);
int device_count();

// "13.0"; works without a GPU.
std::string nvrtc_version();

} // namespace attnjit

#include <attnjit/device.h>
#include <attnjit/error.h>

#include "runtime/driver.h"

#include <fmt/format.h>
#include <nvrtc.h>

namespace attnjit {

std::string arch_for(int cc_major, int cc_minor) {
  // wgmma and setmaxnreg exist only in the arch-specific sm_90a target, not in sm_90.
  if (cc_major == 9 && cc_minor == 0) return "sm_90a";
  return fmt::format("sm_{}{}", cc_major, cc_minor);
}

std::string DeviceInfo::arch() const {
  return arch_for(cc_major, cc_minor);
}

namespace {

int attribute(CUdevice device, int ordinal, CUdevice_attribute attr, const char* name) {
  int value = 0;
  runtime::check(runtime::driver().cuDeviceGetAttribute(&value, attr, device),
                 fmt::format("cuDeviceGetAttribute({}, device {})", name, ordinal).c_str());
  return value;
}

} // namespace

DeviceInfo query_device(int ordinal) {
  const runtime::DriverApi& api = runtime::driver();
  const CUdevice device = runtime::device_handle(ordinal);

  DeviceInfo info;
  info.ordinal = ordinal;
  char name[256] = {};
  runtime::check(api.cuDeviceGetName(name, int(sizeof(name)) - 1, device),
                 fmt::format("cuDeviceGetName(device {})", ordinal).c_str());
  info.name = name;
#define ATTNJIT_ATTRIBUTE(attr) attribute(device, ordinal, attr, #attr)
  info.cc_major = ATTNJIT_ATTRIBUTE(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
  info.cc_minor = ATTNJIT_ATTRIBUTE(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
  info.sm_count = ATTNJIT_ATTRIBUTE(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
  info.max_smem_per_block =
      ATTNJIT_ATTRIBUTE(CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN);
  info.max_regs_per_block = ATTNJIT_ATTRIBUTE(CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK);
  info.l2_bytes = ATTNJIT_ATTRIBUTE(CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE);
#undef ATTNJIT_ATTRIBUTE
  size_t total = 0;
  runtime::check(api.cuDeviceTotalMem(&total, device),
                 fmt::format("cuDeviceTotalMem(device {})", ordinal).c_str());
  info.total_memory = static_cast<long long>(total);
  runtime::check(api.cuDriverGetVersion(&info.driver_version), "cuDriverGetVersion");
  return info;
}

int device_count() {
  int count = 0;
  runtime::check(runtime::driver().cuDeviceGetCount(&count), "cuDeviceGetCount");
  return count;
}

std::string nvrtc_version() {
  int major = 0, minor = 0;
  if (nvrtcResult r = nvrtcVersion(&major, &minor); r != NVRTC_SUCCESS)
    throw Error(ErrorKind::internal, fmt::format("nvrtcVersion: {}", nvrtcGetErrorString(r)));
  return fmt::format("{}.{}", major, minor);
}

} // namespace attnjit

#include "runtime/driver.h"

#include <attnjit/error.h>
#include <fmt/format.h>
#include <fmt/ranges.h> // fmt::join moved here in fmt 11

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>
#include <optional>
#include <type_traits>
#include <vector>

// Per-thread default stream variants (cuMemcpyHtoD_v2_ptds, ...) would change which stream the
// synchronous calls order against; the library is written for the legacy default stream.
#ifdef CUDA_API_PER_THREAD_DEFAULT_STREAM
#error "attnjit expects the legacy default stream; do not define CUDA_API_PER_THREAD_DEFAULT_STREAM"
#endif

namespace attnjit::runtime {
namespace {

// Every DriverApi member. Expanding a name through cuda.h's macros yields the versioned symbol
// (cuMemAlloc -> cuMemAlloc_v2), which is what dlsym must look up.
#define ATTNJIT_DRIVER_ENTRY_POINTS(X)                                                             \
  X(cuInit)                                                                                        \
  X(cuDriverGetVersion)                                                                            \
  X(cuDeviceGetCount)                                                                              \
  X(cuDeviceGet)                                                                                   \
  X(cuDeviceGetName)                                                                               \
  X(cuDeviceGetAttribute)                                                                          \
  X(cuDeviceTotalMem)                                                                              \
  X(cuDevicePrimaryCtxRetain)                                                                      \
  X(cuCtxSetCurrent)                                                                               \
  X(cuCtxGetCurrent)                                                                               \
  X(cuCtxSynchronize)                                                                              \
  X(cuCtxPushCurrent)                                                                              \
  X(cuCtxPopCurrent)                                                                               \
  X(cuModuleLoadData)                                                                              \
  X(cuModuleUnload)                                                                                \
  X(cuModuleGetFunction)                                                                           \
  X(cuFuncGetAttribute)                                                                            \
  X(cuFuncSetAttribute)                                                                            \
  X(cuOccupancyMaxActiveBlocksPerMultiprocessor)                                                   \
  X(cuLaunchKernel)                                                                                \
  X(cuLaunchKernelEx)                                                                              \
  X(cuMemAlloc)                                                                                    \
  X(cuMemFree)                                                                                     \
  X(cuMemcpyHtoD)                                                                                  \
  X(cuMemcpyDtoH)                                                                                  \
  X(cuMemsetD8)                                                                                    \
  X(cuMemsetD16)                                                                                   \
  X(cuMemsetD32)                                                                                   \
  X(cuMemsetD32Async)                                                                              \
  X(cuStreamCreate)                                                                                \
  X(cuStreamDestroy)                                                                               \
  X(cuStreamSynchronize)                                                                           \
  X(cuEventCreate)                                                                                 \
  X(cuEventDestroy)                                                                                \
  X(cuEventRecord)                                                                                 \
  X(cuEventSynchronize)                                                                            \
  X(cuEventElapsedTime)                                                                            \
  X(cuTensorMapEncodeTiled)                                                                        \
  X(cuGetErrorName)                                                                                \
  X(cuGetErrorString)

#define ATTNJIT_STRINGIFY_(x) #x
#define ATTNJIT_SYMBOL_NAME(x) ATTNJIT_STRINGIFY_(x)

// A hand-written signature that disagrees with cuda.h would be a silent ABI bug at call time.
#define ATTNJIT_CHECK_SIGNATURE(name)                                                              \
  static_assert(std::is_same_v<decltype(DriverApi::name), decltype(&::name)>,                      \
                "DriverApi::" #name " does not match its declaration in cuda.h");
ATTNJIT_DRIVER_ENTRY_POINTS(ATTNJIT_CHECK_SIGNATURE)
#undef ATTNJIT_CHECK_SIGNATURE

constexpr const char* kDefaultLibrary = "libcuda.so.1";
constexpr const char* kNoRunSuffix = "kernels can be generated and compiled but not run";

// Codes a machine without a working driver produces, where cuGetErrorName may not work (the
// toolkit's stub libcuda answers every call, that one included, with CUDA_ERROR_STUB_LIBRARY).
const char* fallback_name(CUresult result) {
  switch (result) {
  case CUDA_ERROR_STUB_LIBRARY:
    return "CUDA_ERROR_STUB_LIBRARY";
  case CUDA_ERROR_NO_DEVICE:
    return "CUDA_ERROR_NO_DEVICE";
  case CUDA_ERROR_SYSTEM_DRIVER_MISMATCH:
    return "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH";
  case CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE:
    return "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE";
  case CUDA_ERROR_DEVICE_UNAVAILABLE:
    return "CUDA_ERROR_DEVICE_UNAVAILABLE";
  case CUDA_ERROR_NOT_INITIALIZED:
    return "CUDA_ERROR_NOT_INITIALIZED";
  default:
    return nullptr;
  }
}

std::string describe(const DriverApi& api, CUresult result) {
  const char* name = nullptr;
  const char* text = nullptr;
  if (api.cuGetErrorName == nullptr || api.cuGetErrorName(result, &name) != CUDA_SUCCESS)
    name = fallback_name(result);
  if (api.cuGetErrorString == nullptr || api.cuGetErrorString(result, &text) != CUDA_SUCCESS)
    text = nullptr;
  const std::string shown_name = name ? std::string(name) : fmt::format("CUresult {}", int(result));
  if (result == CUDA_ERROR_STUB_LIBRARY && text == nullptr)
    text = "this libcuda is the CUDA toolkit's link-time stub, not a driver";
  return text ? fmt::format("{} ({})", shown_name, text) : shown_name;
}

// The outcome of the one load attempt: either a usable API or the reason there is none.
struct Loaded {
  DriverApi api{};
  std::string error; // non-empty: driver() throws Error(no_device, error)
};

Loaded load() {
  Loaded out;
  const char* override_path = std::getenv("ATTNJIT_LIBCUDA");
  const bool overridden = override_path != nullptr && *override_path != '\0';
  const std::string path = overridden ? override_path : kDefaultLibrary;
  const std::string shown = overridden ? fmt::format("{}, from ATTNJIT_LIBCUDA", path) : path;

  // Never dlclose'd: contexts and modules outlive any caller.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = dlerror();
    out.error = fmt::format("cannot load the CUDA driver ({}): {}; this machine has no NVIDIA "
                            "driver, so {}",
                            shown, why ? why : "unknown dlopen error", kNoRunSuffix);
    return out;
  }

  std::vector<std::string> missing;
#define ATTNJIT_RESOLVE(name)                                                                      \
  out.api.name =                                                                                   \
      reinterpret_cast<decltype(out.api.name)>(dlsym(handle, ATTNJIT_SYMBOL_NAME(name)));          \
  if (out.api.name == nullptr) missing.emplace_back(ATTNJIT_SYMBOL_NAME(name));
  ATTNJIT_DRIVER_ENTRY_POINTS(ATTNJIT_RESOLVE)
#undef ATTNJIT_RESOLVE
  if (!missing.empty()) {
    int version = 0;
    if (out.api.cuDriverGetVersion != nullptr) out.api.cuDriverGetVersion(&version);
    const std::string found =
        version > 0 ? fmt::format("CUDA {}.{}", version / 1000, version % 1000 / 10) : "unknown";
    out.error = fmt::format("the CUDA driver ({}, version {}) lacks {}; it is older than the "
                            "CUDA {}.{} this build of attnjit targets, so {}",
                            shown, found, fmt::join(missing, ", "), CUDA_VERSION / 1000,
                            CUDA_VERSION % 1000 / 10, kNoRunSuffix);
    return out;
  }

  if (CUresult r = out.api.cuInit(0); r != CUDA_SUCCESS) {
    out.error = fmt::format("the CUDA driver ({}) failed to initialize: cuInit(0): {}; {}", shown,
                            describe(out.api, r), kNoRunSuffix);
    return out;
  }
  int count = 0;
  if (CUresult r = out.api.cuDeviceGetCount(&count); r != CUDA_SUCCESS) {
    out.error = fmt::format("the CUDA driver ({}) cannot count devices: cuDeviceGetCount: {}; {}",
                            shown, describe(out.api, r), kNoRunSuffix);
    return out;
  }
  if (count == 0) {
    out.error = fmt::format("the CUDA driver ({}) reports no GPU; {}", shown, kNoRunSuffix);
    return out;
  }
  return out;
}

const Loaded& loaded() {
  static const Loaded instance = load(); // thread-safe, once: C++ static initialization
  return instance;
}

} // namespace

const DriverApi& driver() {
  const Loaded& l = loaded();
  if (!l.error.empty()) throw Error(ErrorKind::no_device, l.error);
  return l.api;
}

void check(CUresult result, const char* what) {
  if (result == CUDA_SUCCESS) return;
  throw Error(ErrorKind::driver, fmt::format("{}: {}", what, describe(loaded().api, result)));
}

CUdevice device_handle(int ordinal) {
  const DriverApi& api = driver();
  int count = 0;
  check(api.cuDeviceGetCount(&count), "cuDeviceGetCount");
  if (ordinal < 0 || ordinal >= count)
    throw Error(ErrorKind::invalid_argument,
                fmt::format("device {} does not exist: the CUDA driver reports {} device{} "
                            "(ordinals 0..{})",
                            ordinal, count, count == 1 ? "" : "s", count - 1));
  CUdevice device = 0;
  check(api.cuDeviceGet(&device, ordinal), fmt::format("cuDeviceGet({})", ordinal).c_str());
  return device;
}

void use_device(int ordinal) {
  const DriverApi& api = driver();
  const CUdevice device = device_handle(ordinal);

  // Indexed by ordinal; a context is retained at most once so the driver's refcount stays 1.
  static std::mutex mutex;
  static std::vector<CUcontext> contexts;
  CUcontext context = nullptr;
  {
    std::lock_guard lock(mutex);
    if (contexts.size() <= size_t(ordinal)) contexts.resize(size_t(ordinal) + 1, nullptr);
    if (contexts[size_t(ordinal)] == nullptr) {
      CUcontext retained = nullptr;
      check(api.cuDevicePrimaryCtxRetain(&retained, device),
            fmt::format("cuDevicePrimaryCtxRetain(device {})", ordinal).c_str());
      contexts[size_t(ordinal)] = retained;
    }
    context = contexts[size_t(ordinal)];
  }
  check(api.cuCtxSetCurrent(context), fmt::format("cuCtxSetCurrent(device {})", ordinal).c_str());
}

CUcontext device_context(int ordinal) {
  use_device(ordinal);
  CUcontext context = nullptr;
  check(driver().cuCtxGetCurrent(&context), "cuCtxGetCurrent()");
  return context;
}

void make_current(CUcontext context) {
  const DriverApi& api = driver();
  CUcontext current = nullptr;
  check(api.cuCtxGetCurrent(&current), "cuCtxGetCurrent()");
  if (current != context) check(api.cuCtxSetCurrent(context), "cuCtxSetCurrent(plan's context)");
}

} // namespace attnjit::runtime

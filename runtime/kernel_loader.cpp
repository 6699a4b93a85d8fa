#include "runtime/kernel_loader.h"

#include <attnjit/error.h>

#include "runtime/driver.h"

#include <fmt/format.h>

#include <future>
#include <map>
#include <mutex>
#include <tuple>

namespace attnjit::runtime {
namespace {

// Source, name expressions, arch and extra options decide the CUBIN (program_name only names
// dumps and errors); a module is per device; the shared-memory opt-in is set on the function.
// The CUBIN itself is not kept: once loaded, the driver holds the code, and a tuning sweep's
// hundreds of candidates would otherwise pin hundreds of CUBINs in host memory.
using LoadKey = std::tuple<std::string, std::vector<std::string>, std::string,
                           std::vector<std::string>, int, int>;

// A process-wide map from key to the one computation of its value. The first caller computes
// outside the lock; concurrent callers with the same key wait on its future instead of repeating
// the work. A failure reaches every waiter but is not kept, so a later call tries again.
template <class Key, class Value> class OnceCache {
public:
  template <class Make> Value get(const Key& key, Make&& make) {
    std::promise<Value> promise;
    std::shared_future<Value> future;
    bool owner = false;
    {
      std::lock_guard lock(mutex_);
      auto it = entries_.find(key);
      if (it != entries_.end()) {
        future = it->second;
      } else {
        future = promise.get_future().share();
        entries_.emplace(key, future);
        owner = true;
      }
    }
    if (owner) {
      try {
        promise.set_value(make());
      } catch (...) {
        promise.set_exception(std::current_exception());
        std::lock_guard lock(mutex_);
        entries_.erase(key);
      }
    }
    return future.get();
  }

private:
  std::mutex mutex_;
  std::map<Key, std::shared_future<Value>> entries_;
};

std::string kernel_name(const CompileRequest& request) {
  return fmt::format("{} ({} for {})", request.name_expressions.front(),
                     request.program_name.empty() ? "<unnamed program>" : request.program_name,
                     request.arch);
}

int function_attribute(CUfunction function, CUfunction_attribute attribute, const char* name,
                       const CompileRequest& request) {
  int value = 0;
  check(driver().cuFuncGetAttribute(&value, attribute, function),
        fmt::format("cuFuncGetAttribute({}) of {}", name, kernel_name(request)).c_str());
  return value;
}

// Unloads a module unless released: a load that fails half-way leaves nothing behind.
struct ModuleGuard {
  CUmodule module = nullptr;
  ~ModuleGuard() {
    if (module != nullptr) driver().cuModuleUnload(module);
  }
};

constexpr int kDefaultDynamicSmemLimit = 48 * 1024; // above this a launch needs the opt-in

std::shared_ptr<const LoadedKernel>
load(const CompiledProgram& program, const CompileRequest& request, int device, int dynamic_smem) {
  const DriverApi& api = driver(); // device's context is current: load_kernel made it so

  ModuleGuard guard;
  check(api.cuModuleLoadData(&guard.module, program.cubin.data()),
        fmt::format("cuModuleLoadData({}, device {})", kernel_name(request), device).c_str());
  auto kernel = std::make_shared<LoadedKernel>();
  kernel->module = guard.module;
  for (size_t i = 0; i < program.lowered_names.size(); ++i) {
    CUfunction function = nullptr;
    check(api.cuModuleGetFunction(&function, kernel->module, program.lowered_names[i].c_str()),
          fmt::format("cuModuleGetFunction(\"{}\") for {}", program.lowered_names[i],
                      kernel_name(request))
              .c_str());
    kernel->functions.push_back(function);
  }
  kernel->function = kernel->functions.front();

#define ATTNJIT_FUNC_ATTRIBUTE(attr) function_attribute(kernel->function, attr, #attr, request)
  kernel->registers = ATTNJIT_FUNC_ATTRIBUTE(CU_FUNC_ATTRIBUTE_NUM_REGS);
  kernel->static_smem = ATTNJIT_FUNC_ATTRIBUTE(CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES);
  kernel->local_bytes = ATTNJIT_FUNC_ATTRIBUTE(CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES);
  kernel->max_threads = ATTNJIT_FUNC_ATTRIBUTE(CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK);
#undef ATTNJIT_FUNC_ATTRIBUTE
  kernel->dynamic_smem = dynamic_smem;

  int optin_limit = 0;
  check(api.cuDeviceGetAttribute(&optin_limit,
                                 CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
                                 device_handle(device)),
        fmt::format("cuDeviceGetAttribute(MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, device {})", device)
            .c_str());
  if (kernel->static_smem + dynamic_smem > optin_limit)
    throw Error(ErrorKind::invalid_argument,
                fmt::format("{} needs {} bytes of shared memory per block ({} dynamic + {} "
                            "static), but device {} allows at most {}",
                            kernel_name(request), kernel->static_smem + dynamic_smem, dynamic_smem,
                            kernel->static_smem, device, optin_limit));
  if (dynamic_smem > kDefaultDynamicSmemLimit)
    check(api.cuFuncSetAttribute(kernel->function, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                 dynamic_smem),
          fmt::format("cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES, {}) for {}", dynamic_smem,
                      kernel_name(request))
              .c_str());

  guard.module = nullptr; // loaded for the rest of the process: plans hold raw CUfunctions
  return kernel;
}

} // namespace

static void check_request(const CompileRequest& request, int dynamic_smem) {
  if (request.name_expressions.empty())
    throw Error(ErrorKind::invalid_argument,
                fmt::format("cannot load {}: the request has no name expression to instantiate",
                            request.program_name));
  if (dynamic_smem < 0)
    throw Error(ErrorKind::invalid_argument,
                fmt::format("cannot load {}: dynamic shared memory {} is negative",
                            kernel_name(request), dynamic_smem));
}

static OnceCache<LoadKey, std::shared_ptr<const LoadedKernel>>& loaded_kernels() {
  static OnceCache<LoadKey, std::shared_ptr<const LoadedKernel>> loaded;
  return loaded;
}

static LoadKey key_of(const CompileRequest& request, int device, int dynamic_smem) {
  return {request.source, request.name_expressions, request.arch, request.extra_options, device,
          dynamic_smem};
}

std::shared_ptr<const LoadedKernel> load_kernel(const CompileRequest& request, int device,
                                                int dynamic_smem) {
  check_request(request, dynamic_smem);
  return loaded_kernels().get(key_of(request, device, dynamic_smem), [&] {
    // Before compiling: a bad ordinal should not cost an NVRTC run.
    use_device(device);
    return load(compile(request), request, device, dynamic_smem);
  });
}

std::shared_ptr<const LoadedKernel> load_compiled(const CompiledProgram& program,
                                                  const CompileRequest& request, int device,
                                                  int dynamic_smem) {
  check_request(request, dynamic_smem);
  if (program.lowered_names.size() != request.name_expressions.size())
    throw Error(ErrorKind::invalid_argument,
                fmt::format("cannot load {}: {} lowered names for {} name expressions",
                            kernel_name(request), program.lowered_names.size(),
                            request.name_expressions.size()));
  return loaded_kernels().get(key_of(request, device, dynamic_smem), [&] {
    use_device(device);
    return load(program, request, device, dynamic_smem);
  });
}

} // namespace attnjit::runtime

// The CUDA driver, loaded with dlopen("libcuda.so.1") on first use. Every entry point we call is a
// member of DriverApi; nothing links against libcuda, so the library loads on machines without one.
#pragma once

#include <cuda.h>

#include <string>

namespace attnjit::runtime {

// Members are spelled as the API is called; where cuda.h #defines a name to a versioned symbol
// (cuMemAlloc -> cuMemAlloc_v2) the member and the dlsym'd symbol follow the same macro, and
// driver.cpp checks every member's type against cuda.h's declaration.
struct DriverApi {
  CUresult (*cuInit)(unsigned int);
  CUresult (*cuDriverGetVersion)(int*);
  CUresult (*cuDeviceGetCount)(int*);
  CUresult (*cuDeviceGet)(CUdevice*, int);
  CUresult (*cuDeviceGetName)(char*, int, CUdevice);
  CUresult (*cuDeviceGetAttribute)(int*, CUdevice_attribute, CUdevice);
  CUresult (*cuDeviceTotalMem)(size_t*, CUdevice);
  CUresult (*cuDevicePrimaryCtxRetain)(CUcontext*, CUdevice);
  CUresult (*cuCtxSetCurrent)(CUcontext);
  CUresult (*cuCtxGetCurrent)(CUcontext*);
  CUresult (*cuCtxSynchronize)();
  CUresult (*cuCtxPushCurrent)(CUcontext);
  CUresult (*cuCtxPopCurrent)(CUcontext*);
  CUresult (*cuModuleLoadData)(CUmodule*, const void*);
  CUresult (*cuModuleUnload)(CUmodule);
  CUresult (*cuModuleGetFunction)(CUfunction*, CUmodule, const char*);
  CUresult (*cuFuncGetAttribute)(int*, CUfunction_attribute, CUfunction);
  CUresult (*cuFuncSetAttribute)(CUfunction, CUfunction_attribute, int);
  CUresult (*cuOccupancyMaxActiveBlocksPerMultiprocessor)(int*, CUfunction, int, size_t);
  CUresult (*cuLaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                             unsigned, CUstream, void**, void**);
  CUresult (*cuLaunchKernelEx)(const CUlaunchConfig*, CUfunction, void**, void**);
  CUresult (*cuMemAlloc)(CUdeviceptr*, size_t);
  CUresult (*cuMemFree)(CUdeviceptr);
  CUresult (*cuMemcpyHtoD)(CUdeviceptr, const void*, size_t);
  CUresult (*cuMemcpyDtoH)(void*, CUdeviceptr, size_t);
  CUresult (*cuMemsetD8)(CUdeviceptr, unsigned char, size_t);
  CUresult (*cuMemsetD16)(CUdeviceptr, unsigned short, size_t);
  CUresult (*cuMemsetD32)(CUdeviceptr, unsigned int, size_t);
  CUresult (*cuMemsetD32Async)(CUdeviceptr, unsigned int, size_t, CUstream);
  CUresult (*cuStreamCreate)(CUstream*, unsigned int);
  CUresult (*cuStreamDestroy)(CUstream);
  CUresult (*cuStreamSynchronize)(CUstream);
  CUresult (*cuEventCreate)(CUevent*, unsigned int);
  CUresult (*cuEventDestroy)(CUevent);
  CUresult (*cuEventRecord)(CUevent, CUstream);
  CUresult (*cuEventSynchronize)(CUevent);
  CUresult (*cuEventElapsedTime)(float*, CUevent, CUevent);
  CUresult (*cuTensorMapEncodeTiled)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*,
                                     const cuuint64_t*, const cuuint64_t*, const cuuint32_t*,
                                     const cuuint32_t*, CUtensorMapInterleave, CUtensorMapSwizzle,
                                     CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
  CUresult (*cuGetErrorName)(CUresult, const char**);
  CUresult (*cuGetErrorString)(CUresult, const char**);
};

// Loads libcuda.so.1 (or $ATTNJIT_LIBCUDA, so tests can simulate a machine without a driver) and
// calls cuInit once per process. Throws Error(no_device) saying what is missing (no
// libcuda.so.1, a missing symbol, cuInit failing, no GPU); a failure is remembered, not retried.
const DriverApi& driver();

// Makes device `ordinal`'s primary context current on this thread (retained once per process and
// never released: modules loaded into it live as long as the process). Throws
// Error(invalid_argument) for an ordinal the driver does not have.
void use_device(int ordinal);

// The primary context use_device(ordinal) retained: plans keep it, so that run() can make it
// current without the checks, locks and message formatting of use_device.
CUcontext device_context(int ordinal);

// Makes `context` current on this thread if it is not already: two cheap driver calls, no
// allocation, for the launch path.
void make_current(CUcontext context);

// The driver's handle for device `ordinal`, after the same check as use_device; needs no context.
CUdevice device_handle(int ordinal);

// Throws Error(driver) "<what>: <CUDA_ERROR_NAME> (<description>)" when result != CUDA_SUCCESS.
void check(CUresult result, const char* what);

} // namespace attnjit::runtime

// Wraps one driver call: ATTNJIT_CU(cuMemAlloc(&p, n)) reports the expression on failure.
#define ATTNJIT_CU(call) ::attnjit::runtime::check(::attnjit::runtime::driver().call, #call)

// Device memory owned by the host program (CLI, tests, tuner), through the dlopen'd driver.
// The library's run path never allocates: callers own their buffers.
#pragma once

#include <cuda.h>

#include <cstddef>
#include <cstdint>

namespace attnjit::runtime {

class DeviceBuffer {
public:
  DeviceBuffer() = default;
  // On the current context's device (device 0's primary context when the thread has none);
  // throws Error(driver/no_device). Zero bytes allocates nothing: address() is 0.
  explicit DeviceBuffer(size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  CUdeviceptr address() const { return ptr_; }
  void* data() const { return reinterpret_cast<void*>(ptr_); }
  size_t size() const { return bytes_; }

  // Synchronous copies; throw Error(invalid_argument) when [offset, offset+bytes) leaves the
  // buffer.
  void upload(const void* src, size_t bytes, size_t offset = 0);
  void download(void* dst, size_t bytes, size_t offset = 0) const;
  // Every 16-bit (or 32-bit) word set to `pattern`, e.g. 0x7fc0 (bf16 NaN) to poison outputs.
  // Complete on return, so work on any stream sees it. Error(invalid_argument) when the size is
  // not a multiple of the word.
  void fill16(uint16_t pattern);
  void fill32(uint32_t pattern);

private:
  CUdeviceptr ptr_ = 0;
  size_t bytes_ = 0;
  CUcontext context_ = nullptr; // made current around each call, so any thread may use the buffer
};

} // namespace attnjit::runtime

#include "runtime/device_buffer.h"

#include <attnjit/error.h>

#include "runtime/driver.h"

#include <fmt/format.h>

#include <utility>

namespace attnjit::runtime {
namespace {

// The allocation's context, current for one call and then the caller's again: the buffer may be
// used (and destroyed) on threads that never called use_device.
class ScopedContext {
public:
  explicit ScopedContext(CUcontext context) {
    check(driver().cuCtxPushCurrent(context), "cuCtxPushCurrent(device buffer's context)");
  }
  ~ScopedContext() {
    CUcontext popped = nullptr;
    driver().cuCtxPopCurrent(&popped); // cannot fail after a successful push
  }
  ScopedContext(const ScopedContext&) = delete;
  ScopedContext& operator=(const ScopedContext&) = delete;
};

void check_range(const char* what, size_t bytes, size_t offset, size_t size) {
  if (offset > size || bytes > size - offset)
    throw Error(ErrorKind::invalid_argument,
                fmt::format("{} of {} bytes at offset {} leaves the {}-byte device buffer", what,
                            bytes, offset, size));
}

} // namespace

DeviceBuffer::DeviceBuffer(size_t bytes) {
  if (bytes == 0) return;
  CUcontext current = nullptr;
  ATTNJIT_CU(cuCtxGetCurrent(&current));
  if (current == nullptr) {
    use_device(0);
    ATTNJIT_CU(cuCtxGetCurrent(&current));
  }
  check(driver().cuMemAlloc(&ptr_, bytes), fmt::format("cuMemAlloc({} bytes)", bytes).c_str());
  bytes_ = bytes;
  context_ = current;
}

DeviceBuffer::~DeviceBuffer() {
  if (ptr_ == 0) return;
  // A destructor must not throw; a failed free at worst leaks device memory.
  try {
    ScopedContext scope(context_);
    driver().cuMemFree(ptr_);
  } catch (...) {
  }
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : ptr_(std::exchange(other.ptr_, 0)), bytes_(std::exchange(other.bytes_, 0)),
      context_(std::exchange(other.context_, nullptr)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    DeviceBuffer old(std::move(*this)); // freed at scope exit
    ptr_ = std::exchange(other.ptr_, 0);
    bytes_ = std::exchange(other.bytes_, 0);
    context_ = std::exchange(other.context_, nullptr);
  }
  return *this;
}

void DeviceBuffer::upload(const void* src, size_t bytes, size_t offset) {
  check_range("upload", bytes, offset, bytes_);
  if (bytes == 0) return;
  if (src == nullptr)
    throw Error(ErrorKind::invalid_argument,
                fmt::format("upload of {} bytes from a null host pointer", bytes));
  ScopedContext scope(context_);
  check(driver().cuMemcpyHtoD(ptr_ + offset, src, bytes),
        fmt::format("cuMemcpyHtoD({} bytes at offset {})", bytes, offset).c_str());
}

void DeviceBuffer::download(void* dst, size_t bytes, size_t offset) const {
  check_range("download", bytes, offset, bytes_);
  if (bytes == 0) return;
  if (dst == nullptr)
    throw Error(ErrorKind::invalid_argument,
                fmt::format("download of {} bytes to a null host pointer", bytes));
  ScopedContext scope(context_);
  check(driver().cuMemcpyDtoH(dst, ptr_ + offset, bytes),
        fmt::format("cuMemcpyDtoH({} bytes at offset {})", bytes, offset).c_str());
}

void DeviceBuffer::fill16(uint16_t pattern) {
  if (bytes_ % 2 != 0)
    throw Error(ErrorKind::invalid_argument,
                fmt::format("fill16 of a {}-byte device buffer: not a whole number of 16-bit words",
                            bytes_));
  if (bytes_ == 0) return;
  ScopedContext scope(context_);
  check(driver().cuMemsetD16(ptr_, pattern, bytes_ / 2),
        fmt::format("cuMemsetD16({} words of {:#06x})", bytes_ / 2, pattern).c_str());
  // cuMemsetD* may return before the memset has run; a kernel on a non-blocking stream would not
  // be ordered after it.
  ATTNJIT_CU(cuStreamSynchronize(nullptr));
}

void DeviceBuffer::fill32(uint32_t pattern) {
  if (bytes_ % 4 != 0)
    throw Error(ErrorKind::invalid_argument,
                fmt::format("fill32 of a {}-byte device buffer: not a whole number of 32-bit words",
                            bytes_));
  if (bytes_ == 0) return;
  ScopedContext scope(context_);
  check(driver().cuMemsetD32(ptr_, pattern, bytes_ / 4),
        fmt::format("cuMemsetD32({} words of {:#010x})", bytes_ / 4, pattern).c_str());
  ATTNJIT_CU(cuStreamSynchronize(nullptr));
}

} // namespace attnjit::runtime

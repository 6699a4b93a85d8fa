// Device memory the GPU bench checks candidates with: buffers with poisoned guard bands on both
// sides (a kernel writing out of bounds is caught after the run instead of corrupting a
// neighbour), one problem's inputs, and a fresh, poisoned set of outputs per candidate.
#pragma once

#include "runtime/device_buffer.h"
#include "tuner/reference.h"

#include <attnjit/plan.h>

#include <cstdint>
#include <string>
#include <vector>

namespace attnjit::tuner {

// A word that is NaN as two bf16, two fp16 (0x7fc0 both) and one fp32 (0x7fc07fc0): no finished
// output can hold it, so an element the kernel never wrote stays visible.
inline constexpr uint32_t kPoisonWord = 0x7fc07fc0u;

class GuardedBuffer {
public:
  static constexpr size_t kGuardBytes = 4096; // keeps the payload 256-byte aligned like cuMemAlloc

  GuardedBuffer() = default;
  explicit GuardedBuffer(size_t payload_bytes); // guards and payload all poison
  void* data() const { return static_cast<char*>(buffer_.data()) + kGuardBytes; }
  size_t size() const { return payload_; }
  void upload(const void* src, size_t bytes);
  void download(void* dst, size_t bytes) const;
  // Empty when both guards still hold the poison bit for bit, else where the first change is.
  std::string check_guards() const;

private:
  runtime::DeviceBuffer buffer_;
  size_t payload_ = 0;
};

// Q, K and V as the spec lays them out: three [B, S, heads, D] tensors, or one packed
// [B, S, 3, H, D] buffer.
struct DeviceInputs {
  std::vector<GuardedBuffer> buffers;
  TensorView q, k, v;
};
DeviceInputs upload_inputs(const HostAttentionData& data);

struct DeviceOutputs {
  GuardedBuffer o;   // [B, Sq, H, Dv] in the dtype
  GuardedBuffer lse; // [B, H, Sq] float
};
DeviceOutputs make_outputs(const AttentionProblem& problem); // poisoned

ForwardArgs forward_args(const DeviceInputs& in, const DeviceOutputs& out,
                         const AttentionProblem& problem);

// Empty when every guard band is intact, else one line per damaged buffer.
std::string check_guards(const DeviceInputs& in, const DeviceOutputs& out);

struct HostOutputs {
  std::vector<uint16_t> o;
  std::vector<float> lse;
};
HostOutputs download(const DeviceOutputs& out);
// NaN anywhere in O or LSE: a sampled check would miss rows it did not draw.
int64_t count_nan(const HostOutputs& out, DType dtype);
// The rows the reference computed, shaped as compare_forward expects.
ForwardRows rows_of(const HostOutputs& out, const AttentionProblem& problem,
                    const std::vector<RowId>& rows);

} // namespace attnjit::tuner

// One problem's inputs and outputs in device memory, laid out the way `attnjit run` feeds the
// kernel: contiguous [B, S, heads, D] tensors, or one [B, S, 3, H, D] buffer for --layout=packed.
#pragma once

#include "runtime/device_buffer.h"
#include "tuner/reference.h"

#include <attnjit/plan.h>

#include <vector>

namespace attnjit::apps {

struct DeviceProblem {
  runtime::DeviceBuffer qkv; // q, k and v back to back, or interleaved when packed
  runtime::DeviceBuffer o;   // [B, Sq, H, Dv] in the spec's dtype
  runtime::DeviceBuffer lse; // [B, H, Sq] float
  ForwardArgs args;          // views into the buffers above
  DType dtype = DType::bf16;
};

// Converts the host floats to the spec's dtype and uploads them; the current device must be set.
DeviceProblem upload(const tuner::HostAttentionData& data);

// Sets every output element to NaN, so rows the kernel never writes fail the check.
void poison_outputs(DeviceProblem& device);

// The kernel's O and LSE for `rows`, shaped as tuner::compare_forward expects.
tuner::ForwardRows download_rows(const DeviceProblem& device, const AttentionProblem& problem,
                                 const std::vector<tuner::RowId>& rows);

} // namespace attnjit::apps

// One problem's inputs and outputs in device memory, laid out the way `attnjit run` feeds the
// kernel: contiguous [B, S, heads, D] tensors, or one [B, S, 3, H, D] buffer for --layout=packed;
// for --layout=v-in-k Q and K only, V being K's view.
#pragma once

#include "runtime/device_buffer.h"
#include "tuner/reference.h"
#include "tuner/reference_backward.h"

#include <attnjit/plan.h>

#include <vector>

namespace attnjit::apps {

struct DeviceProblem {
  runtime::DeviceBuffer qkv; // q, k (and v unless v_in_k) back to back, or interleaved: packed
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

// What `attnjit run --pass=bwd` adds: dO, the gradients and the backward's workspace. The
// gradients mirror the inputs: dq, dk, dv back to back, or one [B, S, 3, H, D] buffer whose three
// slices are dq, dk and dv when packed.
struct DeviceGradients {
  runtime::DeviceBuffer dout;      // [B, Sq, H, Dv] in the spec's dtype
  runtime::DeviceBuffer grads;     // dq, dk, dv
  runtime::DeviceBuffer workspace; // BackwardPlan::workspace_bytes()
  BackwardArgs args;               // q, k, v, o and lse from the forward's DeviceProblem
  DType dtype = DType::bf16;
};

// Uploads data.dout; `forward` must outlive the result (args points into it).
DeviceGradients upload_backward(const tuner::HostBackwardData& data, const DeviceProblem& forward,
                                size_t workspace_bytes);

// Sets every gradient element to NaN, so elements the backward never writes fail the check.
void poison_gradients(DeviceGradients& device);

// The backward's dQ rows and dK/dV keys, shaped as tuner::compare_backward expects.
tuner::BackwardRows download_gradients(const DeviceGradients& device,
                                       const AttentionProblem& problem,
                                       const std::vector<tuner::RowId>& rows,
                                       const std::vector<tuner::KeyId>& keys);

} // namespace attnjit::apps

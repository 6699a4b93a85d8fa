// What the GPU bench checks backward candidates with, beside the forward's inputs and outputs
// (device_tensors.h): dO, and per candidate fresh dQ, dK, dV and workspace, all poisoned and
// guard-banded like the forward's outputs. The gradients mirror the inputs: three [B, S, heads, D]
// tensors, or one packed [B, S, 3, H, D] buffer whose slices are dq, dk and dv.
#pragma once

#include "tuner/device_tensors.h"
#include "tuner/reference_backward.h"

#include <attnjit/plan.h>

#include <cstdint>
#include <string>
#include <vector>

namespace attnjit::tuner {

struct DeviceGradients {
  std::vector<GuardedBuffer> buffers; // dq, dk, dv; or one packed buffer
  GuardedBuffer workspace;            // codegen::BackwardLayout::workspace_bytes()
  TensorView dq, dk, dv;
};

// Everything poisoned (kPoisonWord), payload and guards.
DeviceGradients make_gradients(const AttentionProblem& problem, size_t workspace_bytes);

// dO, contiguous [B, Sq, H, Dv] in the dtype.
GuardedBuffer upload_dout(const HostBackwardData& data);

// The backward's arguments: Q, K, V from `in`, O and LSE from the forward's `forward`.
BackwardArgs backward_args(const DeviceInputs& in, const DeviceOutputs& forward,
                           const GuardedBuffer& dout, const DeviceGradients& grads,
                           const AttentionProblem& problem);

// Empty when every guard band of the gradients, the workspace and dO is intact, else one line per
// damaged buffer.
std::string check_guards(const DeviceGradients& grads, const GuardedBuffer& dout);

// The gradients on the host, every buffer whole.
struct HostGradients {
  std::vector<std::vector<uint16_t>> buffers;
};
HostGradients download(const DeviceGradients& grads);
// NaN anywhere in dQ, dK or dV: a sampled check would miss rows it did not draw.
int64_t count_nan(const HostGradients& host, DType dtype);
// The dQ rows and dK/dV keys the reference computed, shaped as compare_backward expects.
BackwardRows gradient_rows(const HostGradients& host, const DeviceGradients& grads,
                           const AttentionProblem& problem, const std::vector<RowId>& rows,
                           const std::vector<KeyId>& keys);

} // namespace attnjit::tuner

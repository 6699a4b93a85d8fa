// The TMA tensor maps the warp-specialized kernels read their inputs through (and the forward,
// where O is staged in Q's place, stores O through). They hold the tensors' addresses, so run()
// encodes them on every call (host work only, about a microsecond each; no allocation).
#pragma once

#include <attnjit/plan.h>
#include <attnjit/spec.h>

#include <attnjit/tma_params.h>

namespace attnjit::codegen {

// Throws Error(invalid_argument) naming the tensor and its strides when the driver refuses a
// map (check_view has already vouched for alignment and strides).
FwdTmaParams forward_tensor_maps(const AttentionProblem& problem, const TileConfig& config,
                                 const ForwardArgs& args);
BwdTmaParams backward_tensor_maps(const AttentionProblem& problem, const TileConfig& config,
                                  const BackwardArgs& args);

} // namespace attnjit::codegen

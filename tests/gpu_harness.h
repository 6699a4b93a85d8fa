// What GPU tests share: skipping (and saying so) without a GPU, NaN-guarded device buffers, and
// moving HostAttentionData to the device and kernel results back as ForwardRows.
//
//   TEST_CASE("forward matches the reference" * attnjit::test::needs_gpu()) { ... }
//
// On a machine without a usable GPU such cases are reported as skipped, and the test binary prints
// "GPU tests skipped: <why>" once, before doctest's own output.
#pragma once

#include "runtime/device_buffer.h"
#include "tuner/reference.h"
#include "tuner/reference_backward.h"

#include <attnjit/plan.h>

#include <doctest/doctest.h>

#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace attnjit::test {

// Loads the driver, finds a device and makes device 0 current on this thread; false (and why)
// when any of that fails.
bool gpu_available(std::string* why);
// gpu_available() once per process, printing the outcome to stdout.
bool gpu_usable();
inline doctest::skip needs_gpu() {
  return doctest::skip(!gpu_usable());
}

// A word that is NaN as bf16, fp16 (0x7fc0 both) and fp32 (0x7fc07fc0).
inline constexpr uint32_t kNanPattern = 0x7fc07fc0u;

// Device memory with NaN-pattern guard bands on both sides of the payload, so a kernel that writes
// out of bounds is caught after the fact instead of corrupting a neighbour silently.
class GuardedBuffer {
public:
  static constexpr size_t kGuardBytes = 4096; // keeps the payload 256-byte aligned like cuMemAlloc

  GuardedBuffer() = default;
  explicit GuardedBuffer(size_t payload_bytes); // guards and payload all NaN pattern
  void* data() const { return static_cast<char*>(buffer_.data()) + kGuardBytes; }
  size_t size() const { return payload_; }

  void upload(const void* src, size_t bytes, size_t offset = 0);
  void download(void* dst, size_t bytes, size_t offset = 0) const;
  void poison(); // the payload back to the NaN pattern
  // Empty when both guards still hold the pattern bit for bit, else where the first change is.
  std::string check_guards() const;

private:
  runtime::DeviceBuffer buffer_;
  size_t payload_ = 0;
};

// One problem's tensors on the device, ready for ForwardPlan::run.
struct DeviceAttention {
  AttentionProblem problem;
  std::vector<GuardedBuffer> inputs; // q, k, v (q, k for v_in_k); or one packed [B, S, 3, H, D]
  GuardedBuffer o;                   // [B, Sq, H, Dv] in the dtype
  GuardedBuffer lse;                 // [B, H, Sq] float
  ForwardArgs args;
};

// Uploads in data.problem.spec.layout (packed_qkv needs H == KV and Dqk == Dv; v_in_k uploads no
// V and passes K's view as args.v); outputs poisoned.
DeviceAttention upload(const tuner::HostAttentionData& data);
void poison_outputs(DeviceAttention& device);
// Empty when every guard band is intact, else one line per damaged buffer.
std::string check_guards(const DeviceAttention& device);
// The kernel's O and LSE for `rows`, in the layout the reference uses.
tuner::ForwardRows gather(const DeviceAttention& device, const std::vector<tuner::RowId>& rows);
// NaN values anywhere in O and LSE: sampled checks would miss rows they did not draw.
int64_t count_nan_outputs(const DeviceAttention& device);

// Plans for many problems at once, built on all cores: NVRTC compiles dominate GPU test time.
struct PlanRequest {
  AttentionProblem problem;
  std::optional<TileConfig> config;
};
struct BuiltPlan {
  std::unique_ptr<ForwardPlan> plan; // null when construction threw
  std::exception_ptr error;
};
std::vector<BuiltPlan> build_plans(const std::vector<PlanRequest>& requests);

// A fresh seed from std::random_device, or ATTNJIT_TEST_SEED when set (to replay a failure).
uint64_t test_seed();

// Waits for all work on the current context; throws Error(driver) on a kernel fault.
void synchronize();

// ---- Backward ----

// How dO sits in device memory: the backward must honour whatever strides it is given.
enum class DoutLayout {
  contiguous,  // [B, Sq, H, Dv]
  padded_seq,  // [B, Sq, H, Dv] with kDoutSeqPad NaN elements after each position's heads
  heads_outer, // [B, H, Sq, Dv]
};
inline constexpr int64_t kDoutSeqPad = 64;

// One backward problem on the device. Run a ForwardPlan on forward.args first (it writes the O
// and LSE that args reads), then a BackwardPlan on args. Every buffer has NaN guard bands; the
// gradients and the workspace start out NaN.
struct DeviceBackward {
  DeviceAttention forward;          // q, k, v; o and lse
  GuardedBuffer dout;               // in the DoutLayout asked for
  std::vector<GuardedBuffer> grads; // dq, dk, dv; or one [B, S, 3, H, D] buffer for packed_qkv
  GuardedBuffer workspace;          // BackwardPlan::workspace_bytes()
  BackwardArgs args;
};

DeviceBackward upload_backward(const tuner::HostBackwardData& data, size_t workspace_bytes,
                               DoutLayout layout = DoutLayout::contiguous);
// dq, dk, dv and the workspace back to the NaN pattern (O and LSE are left alone).
void poison_gradients(DeviceBackward& device);
// Empty when every guard band (forward buffers included) is intact, else one line per damage.
std::string check_guards(const DeviceBackward& device);
// The kernel's dQ rows and dK/dV keys, shaped as tuner::compare_backward expects.
tuner::BackwardRows gather_gradients(const DeviceBackward& device,
                                     const std::vector<tuner::RowId>& rows,
                                     const std::vector<tuner::KeyId>& keys);
// The raw bits of dq, dk and dv (each walked through its view), for run-to-run comparisons.
struct GradientBits {
  std::vector<uint16_t> dq, dk, dv;
};
GradientBits download_gradients(const DeviceBackward& device);
// NaN anywhere in dq, dk or dv: sampled checks would miss rows they did not draw.
int64_t count_nan_gradients(const DeviceBackward& device);

// A forward plan (default config, for O and LSE) and a backward plan (the request's config) for
// each request, all built on all cores. The request's problem may name either pass.
struct BuiltBackward {
  std::unique_ptr<ForwardPlan> forward;
  std::unique_ptr<BackwardPlan> backward;
  std::exception_ptr error; // the first failure of the two; both null then
};
std::vector<BuiltBackward> build_backward_plans(const std::vector<PlanRequest>& requests);

} // namespace attnjit::test

// The C API's small functions: versions, the device count, the problem's defaults and checks.
#include "capi/handles.h"
#include "capi/status.h"

#include <attnjit/device.h>
#include <attnjit/version.h>

using namespace attnjit;

extern "C" {

const char* attnjit_version(void) {
  return ATTNJIT_VERSION;
}

int attnjit_c_api_version(void) {
  return ATTNJIT_C_API_VERSION;
}

attnjit_status attnjit_device_count(int* count) {
  return capi::guarded("attnjit_device_count", [&] {
    capi::require(count, "count");
    *count = 0;
    *count = device_count();
  });
}

attnjit_status attnjit_problem_init(attnjit_problem* problem) {
  return capi::guarded("attnjit_problem_init", [&] {
    capi::require(problem, "problem");
    const AttentionProblem d; // the C++ defaults are the one source of them
    *problem = attnjit_problem{};
    problem->pass = static_cast<int32_t>(d.spec.pass);
    problem->dtype = static_cast<int32_t>(d.spec.dtype);
    problem->head_dim_qk = d.spec.head_dim_qk;
    problem->head_dim_v = d.spec.head_dim_v;
    problem->num_heads = d.spec.num_heads;
    problem->num_kv_heads = d.spec.num_kv_heads;
    problem->layout = static_cast<int32_t>(d.spec.layout);
    problem->mask = static_cast<int32_t>(d.spec.mask);
    problem->deterministic = d.spec.deterministic ? 1 : 0;
    problem->batch = d.shape.batch;
    problem->seqlen_q = d.shape.seqlen_q;
    problem->seqlen_k = d.shape.seqlen_k;
    problem->softmax_scale = d.softmax_scale;
  });
}

attnjit_status attnjit_problem_validate(const attnjit_problem* problem) {
  return capi::guarded("attnjit_problem_validate", [&] {
    capi::require(problem, "problem");
    validate(capi::to_problem(*problem));
  });
}

attnjit_tensor attnjit_contiguous_bshd(const void* data, int64_t seqlen, int64_t heads,
                                       int64_t head_dim) {
  const TensorView v = contiguous_bshd(data, seqlen, heads, head_dim);
  return {v.data, v.batch_stride, v.seq_stride, v.head_stride};
}

} // extern "C"

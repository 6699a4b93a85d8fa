// The C API on the device: a forward and a backward plan made, described and run through
// libattnjit_c.so, checked against the fp64 reference like the C++ plans; and run-time argument
// errors coming back as status codes with messages.
#include "tests/gpu_harness.h"
#include "tuner/reference.h"
#include "tuner/reference_backward.h"

#include <attnjit/c_api.h>

#include <doctest/doctest.h>

#include <string>

using namespace attnjit;

namespace {

attnjit_tensor to_c(const TensorView& v) {
  return {v.data, v.batch_stride, v.seq_stride, v.head_stride};
}

// GQA, causal, Sq != Sk: the C structs carry every field the kernels need.
AttentionProblem gqa_problem() {
  AttentionProblem p;
  p.spec.head_dim_qk = p.spec.head_dim_v = 64;
  p.spec.num_heads = 8;
  p.spec.num_kv_heads = 2;
  p.spec.mask = Mask::causal;
  p.shape = {2, 150, 200};
  p.softmax_scale = 0.11f;
  return p;
}

attnjit_problem to_c(const AttentionProblem& p) {
  attnjit_problem c;
  REQUIRE(attnjit_problem_init(&c) == ATTNJIT_OK);
  c.pass = static_cast<int32_t>(p.spec.pass);
  c.dtype = static_cast<int32_t>(p.spec.dtype);
  c.head_dim_qk = p.spec.head_dim_qk, c.head_dim_v = p.spec.head_dim_v;
  c.num_heads = p.spec.num_heads, c.num_kv_heads = p.spec.num_kv_heads;
  c.layout = static_cast<int32_t>(p.spec.layout);
  c.mask = static_cast<int32_t>(p.spec.mask);
  c.deterministic = p.spec.deterministic ? 1 : 0;
  c.batch = p.shape.batch, c.seqlen_q = p.shape.seqlen_q, c.seqlen_k = p.shape.seqlen_k;
  c.softmax_scale = p.softmax_scale;
  return c;
}

struct ForwardHandle {
  attnjit_forward_plan* plan = nullptr;
  ~ForwardHandle() { attnjit_forward_plan_destroy(plan); }
};
struct BackwardHandle {
  attnjit_backward_plan* plan = nullptr;
  ~BackwardHandle() { attnjit_backward_plan_destroy(plan); }
};

attnjit_forward_args forward_args(const test::DeviceAttention& device) {
  return {to_c(device.args.q), to_c(device.args.k), to_c(device.args.v), to_c(device.args.o),
          device.args.lse};
}

} // namespace

TEST_SUITE("gpu.capi") {
  TEST_CASE("forward and backward through the C API match the reference" * test::needs_gpu()) {
    const AttentionProblem problem = gqa_problem();
    const uint64_t seed = test::test_seed();
    INFO("seed ", seed, " (ATTNJIT_TEST_SEED replays it)");
    int count = 0;
    REQUIRE(attnjit_device_count(&count) == ATTNJIT_OK);
    CHECK(count >= 1);

    const attnjit_problem c_forward = to_c(problem);
    ForwardHandle forward;
    REQUIRE_MESSAGE(attnjit_forward_plan_create(&c_forward, nullptr, 0, &forward.plan) ==
                        ATTNJIT_OK,
                    attnjit_last_error());
    attnjit_plan_info info{};
    REQUIRE(attnjit_forward_plan_info(forward.plan, &info) == ATTNJIT_OK);
    CHECK(info.config_source == ATTNJIT_CONFIG_DEFAULT); // tests keep off the user's database
    CHECK(info.registers_per_thread > 0);
    CHECK(info.shared_memory_bytes > 0);
    CHECK(info.workspace_bytes == 0);
    CHECK(std::string(info.cache_warnings).empty());

    AttentionProblem backward_problem = problem;
    backward_problem.spec.pass = Pass::backward;
    const attnjit_problem c_backward = to_c(backward_problem);
    BackwardHandle backward;
    REQUIRE_MESSAGE(attnjit_backward_plan_create(&c_backward, nullptr, 0, &backward.plan) ==
                        ATTNJIT_OK,
                    attnjit_last_error());
    size_t workspace = 0;
    REQUIRE(attnjit_backward_plan_workspace_size(backward.plan, &workspace) == ATTNJIT_OK);
    CHECK(workspace > 0);
    REQUIRE(attnjit_backward_plan_info(backward.plan, &info) == ATTNJIT_OK);
    CHECK(info.workspace_bytes == workspace);

    const tuner::HostBackwardData data = tuner::random_backward_inputs(problem, seed);
    test::DeviceBackward device = test::upload_backward(data, workspace);
    const attnjit_forward_args fargs = forward_args(device.forward);
    REQUIRE_MESSAGE(attnjit_forward_plan_run(forward.plan, &fargs, nullptr) == ATTNJIT_OK,
                    attnjit_last_error());
    const BackwardArgs& b = device.args;
    const attnjit_backward_args bargs{to_c(b.q),    to_c(b.k),   to_c(b.v),        to_c(b.o),
                                      to_c(b.dout), b.lse,       to_c(b.dq),       to_c(b.dk),
                                      to_c(b.dv),   b.workspace, b.workspace_bytes};
    REQUIRE_MESSAGE(attnjit_backward_plan_run(backward.plan, &bargs, nullptr) == ATTNJIT_OK,
                    attnjit_last_error());
    test::synchronize();

    const std::vector<tuner::RowId> rows = tuner::all_rows(problem);
    const tuner::Comparison fwd = tuner::compare_forward(
        tuner::reference_forward(data.inputs, rows), tuner::plain_forward(data.inputs, rows),
        test::gather(device.forward, rows), 2.0, tuner::default_abs_floor(problem.spec.dtype));
    CHECK_MESSAGE(fwd.passed, fwd.summary);
    const std::vector<tuner::KeyId> keys = tuner::all_keys(problem);
    const tuner::BackwardComparison bwd = tuner::compare_backward(
        tuner::reference_backward(data, rows, keys), tuner::plain_backward(data, rows, keys),
        test::gather_gradients(device, rows, keys), 3.0,
        tuner::default_backward_abs_floor(problem.spec.dtype));
    CHECK_MESSAGE(bwd.passed, bwd.summary);
    CHECK_MESSAGE(test::check_guards(device).empty(), test::check_guards(device));
  }

  TEST_CASE("run-time argument errors come back as statuses" * test::needs_gpu()) {
    const AttentionProblem problem = gqa_problem();
    const attnjit_problem c_forward = to_c(problem);
    ForwardHandle forward;
    REQUIRE_MESSAGE(attnjit_forward_plan_create(&c_forward, nullptr, 0, &forward.plan) ==
                        ATTNJIT_OK,
                    attnjit_last_error());
    test::DeviceAttention device = test::upload(tuner::random_inputs(problem, test::test_seed()));

    attnjit_forward_args args = forward_args(device);
    args.lse = nullptr;
    CHECK(attnjit_forward_plan_run(forward.plan, &args, nullptr) == ATTNJIT_ERROR_INVALID_ARGUMENT);
    CHECK(std::string(attnjit_last_error()) == "attnjit_forward_plan_run: lse is null");

    args = forward_args(device);
    args.o.seq_stride += 1; // not a multiple of 8 elements
    CHECK(attnjit_forward_plan_run(forward.plan, &args, nullptr) == ATTNJIT_ERROR_INVALID_ARGUMENT);
    CHECK(std::string(attnjit_last_error()).find("o seq stride") != std::string::npos);

    args = forward_args(device);
    args.o = args.q; // the output over an input
    CHECK(attnjit_forward_plan_run(forward.plan, &args, nullptr) == ATTNJIT_ERROR_INVALID_ARGUMENT);
    CHECK(std::string(attnjit_last_error()).find("overlaps") != std::string::npos);

    args = forward_args(device);
    CHECK(attnjit_forward_plan_run(forward.plan, &args, nullptr) == ATTNJIT_OK);
    test::synchronize();
  }

  TEST_CASE("an explicit config is reported as the caller's" * test::needs_gpu()) {
    const attnjit_problem p = to_c(gqa_problem());
    const attnjit_tile_config config{64, 64, 4, 2, 0};
    ForwardHandle forward;
    REQUIRE_MESSAGE(attnjit_forward_plan_create(&p, &config, 0, &forward.plan) == ATTNJIT_OK,
                    attnjit_last_error());
    attnjit_plan_info info{};
    REQUIRE(attnjit_forward_plan_info(forward.plan, &info) == ATTNJIT_OK);
    CHECK(info.config_source == ATTNJIT_CONFIG_CALLER);
    CHECK(info.config.block_m == 64);
    CHECK(info.config.num_warps == 4);
  }
}

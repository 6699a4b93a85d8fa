// The C API (libattnjit_c.so, include/attnjit/c_api.h) without a GPU: versions, status codes, the
// per-thread last-error message, and the errors every entry point gives for null pointers and
// bad problems. These call the shared library's exported functions, as a host app does.
#include "tests/gpu_harness.h"

#include <attnjit/c_api.h>
#include <attnjit/version.h>

#include <doctest/doctest.h>

#include <cstddef>
#include <string>
#include <thread>

// python/attnjit/_capi.py mirrors these structs with ctypes and checks the same sizes
// (EXPECTED_SIZES): a field added on one side only fails one of the two tests.
static_assert(sizeof(attnjit_problem) == 72);
static_assert(sizeof(attnjit_tile_config) == 28);
// Fields are only appended: version 3 added warp_specialized after version 2's wgmma.
static_assert(offsetof(attnjit_tile_config, wgmma) == 20);
static_assert(offsetof(attnjit_tile_config, warp_specialized) == 24);
static_assert(sizeof(attnjit_tensor) == 32);
static_assert(sizeof(attnjit_plan_info) == 64);
static_assert(sizeof(attnjit_forward_args) == 136);
static_assert(sizeof(attnjit_backward_args) == 280);
static_assert(sizeof(attnjit_lookup) == 48);

namespace {

bool contains(const std::string& text, const std::string& piece) {
  return text.find(piece) != std::string::npos;
}

attnjit_problem small_problem() {
  attnjit_problem p;
  REQUIRE(attnjit_problem_init(&p) == ATTNJIT_OK);
  p.head_dim_qk = p.head_dim_v = 64;
  p.num_heads = p.num_kv_heads = 4;
  p.batch = 2, p.seqlen_q = p.seqlen_k = 256;
  return p;
}

// `status` is `expected` and the last error contains every piece.
void check_error(attnjit_status status, attnjit_status expected,
                 std::initializer_list<const char*> pieces) {
  const std::string message = attnjit_last_error();
  INFO(attnjit_status_name(status), ": ", message);
  CHECK(status == expected);
  for (const char* piece : pieces)
    CHECK(contains(message, piece));
}

} // namespace

TEST_SUITE("capi.errors") {
  TEST_CASE("versions come from project(VERSION)") {
    CHECK(std::string(attnjit_version()) == ATTNJIT_VERSION);
    CHECK(attnjit_c_api_version() == ATTNJIT_C_API_VERSION);
    CHECK(ATTNJIT_C_API_VERSION == 3); // python/attnjit/_library.py's C_API_VERSION says the same
    CHECK(std::string(ATTNJIT_VERSION) == std::to_string(ATTNJIT_VERSION_MAJOR) + "." +
                                              std::to_string(ATTNJIT_VERSION_MINOR) + "." +
                                              std::to_string(ATTNJIT_VERSION_PATCH));
  }

  TEST_CASE("every status has a name") {
    CHECK(std::string(attnjit_status_name(ATTNJIT_OK)) == "ATTNJIT_OK");
    CHECK(std::string(attnjit_status_name(ATTNJIT_ERROR_CACHE)) == "ATTNJIT_ERROR_CACHE");
    CHECK(std::string(attnjit_status_name(ATTNJIT_ERROR_INTERNAL)) == "ATTNJIT_ERROR_INTERNAL");
    CHECK(std::string(attnjit_status_name(static_cast<attnjit_status>(42))) ==
          "ATTNJIT_STATUS_UNKNOWN");
  }

  TEST_CASE("problem_init gives the C++ defaults") {
    attnjit_problem p;
    REQUIRE(attnjit_problem_init(&p) == ATTNJIT_OK);
    const attnjit::AttentionProblem d;
    CHECK(p.pass == ATTNJIT_PASS_FORWARD);
    CHECK(p.dtype == ATTNJIT_DTYPE_BF16);
    CHECK(p.head_dim_qk == d.spec.head_dim_qk);
    CHECK(p.num_heads == d.spec.num_heads);
    CHECK(p.num_kv_heads == d.spec.num_kv_heads);
    CHECK(p.layout == ATTNJIT_LAYOUT_SEPARATE);
    CHECK(p.mask == ATTNJIT_MASK_NONE);
    CHECK(p.seqlen_q == d.shape.seqlen_q);
    CHECK(p.softmax_scale == 0.0f);
    CHECK(attnjit_problem_validate(&p) == ATTNJIT_OK);
  }

  TEST_CASE("the last error names the function and the problem, and a success clears it") {
    attnjit_problem p = small_problem();
    p.num_heads = 6, p.num_kv_heads = 4;
    check_error(attnjit_problem_validate(&p), ATTNJIT_ERROR_INVALID_ARGUMENT,
                {"attnjit_problem_validate: ",
                 "num_heads (6) must be a multiple of num_kv_heads (4)", "heads=6/4"});
    const attnjit_problem good = small_problem();
    CHECK(attnjit_problem_validate(&good) == ATTNJIT_OK);
    CHECK(std::string(attnjit_last_error()).empty());
  }

  TEST_CASE("the last error is kept per thread") {
    attnjit_problem bad = small_problem();
    bad.batch = 0;
    REQUIRE(attnjit_problem_validate(&bad) == ATTNJIT_ERROR_INVALID_ARGUMENT);
    std::string other_thread = "not run";
    std::thread([&] {
      other_thread = attnjit_last_error(); // nothing failed on this thread
    }).join();
    CHECK(other_thread.empty());
    CHECK(contains(attnjit_last_error(), "batch must be positive, got 0"));
  }

  TEST_CASE("bad dims and enum values are refused with what was wrong") {
    attnjit_problem p = small_problem();
    p.head_dim_qk = p.head_dim_v = 100;
    check_error(attnjit_problem_validate(&p), ATTNJIT_ERROR_UNSUPPORTED, {"head dim 100"});
    p = small_problem();
    p.seqlen_q = -3;
    check_error(attnjit_problem_validate(&p), ATTNJIT_ERROR_INVALID_ARGUMENT, {"seqlen_q"});
    p = small_problem();
    p.dtype = 7;
    check_error(attnjit_problem_validate(&p), ATTNJIT_ERROR_INVALID_ARGUMENT,
                {"problem.dtype is 7", "ATTNJIT_DTYPE_FP16 (1)"});
    p = small_problem();
    p.mask = -1;
    check_error(attnjit_problem_validate(&p), ATTNJIT_ERROR_INVALID_ARGUMENT,
                {"problem.mask is -1"});
    p = small_problem();
    p.deterministic = 2;
    check_error(attnjit_problem_validate(&p), ATTNJIT_ERROR_INVALID_ARGUMENT,
                {"problem.deterministic is 2; expected 0 or 1"});
    p = small_problem();
    p.reserved = 1;
    check_error(attnjit_problem_validate(&p), ATTNJIT_ERROR_INVALID_ARGUMENT,
                {"problem.reserved is 1"});
    p = small_problem();
    p.deterministic = 1; // a forward problem
    check_error(attnjit_problem_validate(&p), ATTNJIT_ERROR_INVALID_ARGUMENT,
                {"deterministic applies to the backward only"});
  }

  TEST_CASE("null pointers are refused by name, and outputs are reset") {
    const attnjit_problem p = small_problem();
    attnjit_forward_plan* forward = reinterpret_cast<attnjit_forward_plan*>(0x1);
    check_error(attnjit_forward_plan_create(nullptr, nullptr, 0, &forward),
                ATTNJIT_ERROR_INVALID_ARGUMENT, {"attnjit_forward_plan_create: problem is null"});
    CHECK(forward == nullptr);
    check_error(attnjit_forward_plan_create(&p, nullptr, 0, nullptr),
                ATTNJIT_ERROR_INVALID_ARGUMENT, {"plan (the output pointer) is null"});
    attnjit_backward_plan* backward = reinterpret_cast<attnjit_backward_plan*>(0x1);
    check_error(attnjit_backward_plan_create(nullptr, nullptr, 0, &backward),
                ATTNJIT_ERROR_INVALID_ARGUMENT, {"problem is null"});
    CHECK(backward == nullptr);

    attnjit_plan_info info;
    check_error(attnjit_forward_plan_info(nullptr, &info), ATTNJIT_ERROR_INVALID_ARGUMENT,
                {"attnjit_forward_plan_info: plan is null"});
    check_error(attnjit_backward_plan_info(nullptr, &info), ATTNJIT_ERROR_INVALID_ARGUMENT,
                {"plan is null"});
    size_t bytes = 0;
    check_error(attnjit_backward_plan_workspace_size(nullptr, &bytes),
                ATTNJIT_ERROR_INVALID_ARGUMENT,
                {"attnjit_backward_plan_workspace_size: plan is null"});
    attnjit_forward_args fargs{};
    check_error(attnjit_forward_plan_run(nullptr, &fargs, nullptr), ATTNJIT_ERROR_INVALID_ARGUMENT,
                {"attnjit_forward_plan_run: plan is null"});
    attnjit_backward_args bargs{};
    check_error(attnjit_backward_plan_run(nullptr, &bargs, nullptr), ATTNJIT_ERROR_INVALID_ARGUMENT,
                {"attnjit_backward_plan_run: plan is null"});
    check_error(attnjit_problem_init(nullptr), ATTNJIT_ERROR_INVALID_ARGUMENT, {"problem is null"});
    check_error(attnjit_problem_validate(nullptr), ATTNJIT_ERROR_INVALID_ARGUMENT,
                {"problem is null"});
    check_error(attnjit_device_count(nullptr), ATTNJIT_ERROR_INVALID_ARGUMENT, {"count is null"});
    attnjit_forward_plan_destroy(nullptr); // no-ops
    attnjit_backward_plan_destroy(nullptr);
    attnjit_cache_close(nullptr);
  }

  TEST_CASE("a bad config is refused before any device work") {
    const attnjit_problem p = small_problem();
    attnjit_tile_config config{128, 64, 4, 2, 5};
    attnjit_forward_plan* plan = nullptr;
    check_error(attnjit_forward_plan_create(&p, &config, 0, &plan), ATTNJIT_ERROR_INVALID_ARGUMENT,
                {"config.q_in_registers is 5"});
    CHECK(plan == nullptr);
    config = {64, 64, 4, 2, 0, 7};
    check_error(attnjit_forward_plan_create(&p, &config, 0, &plan), ATTNJIT_ERROR_INVALID_ARGUMENT,
                {"config.wgmma is 7"});
    CHECK(plan == nullptr);
    attnjit_backward_plan* backward = nullptr;
    attnjit_problem b = p;
    b.pass = ATTNJIT_PASS_BACKWARD;
    check_error(attnjit_backward_plan_create(&b, &config, 0, &backward),
                ATTNJIT_ERROR_INVALID_ARGUMENT, {"config.wgmma is 7"});
    CHECK(backward == nullptr);
    config = {128, 128, 12, 2, 0, 1, 3};
    check_error(attnjit_forward_plan_create(&p, &config, 0, &plan), ATTNJIT_ERROR_INVALID_ARGUMENT,
                {"config.warp_specialized is 3"});
    CHECK(plan == nullptr);
    check_error(attnjit_backward_plan_create(&b, &config, 0, &backward),
                ATTNJIT_ERROR_INVALID_ARGUMENT, {"config.warp_specialized is 3"});
    CHECK(backward == nullptr);
  }

  TEST_CASE("a plan of the wrong pass is refused") {
    attnjit_problem p = small_problem();
    p.pass = ATTNJIT_PASS_BACKWARD;
    attnjit_forward_plan* plan = nullptr;
    // The pass is checked before the device: the same answer with or without a GPU.
    check_error(attnjit_forward_plan_create(&p, nullptr, 0, &plan), ATTNJIT_ERROR_INVALID_ARGUMENT,
                {"ForwardPlan needs a forward spec"});
    CHECK(plan == nullptr);
  }

  TEST_CASE("contiguous_bshd gives [B, S, H, D] strides") {
    int x = 0;
    const attnjit_tensor t = attnjit_contiguous_bshd(&x, 100, 8, 64);
    CHECK(t.data == &x);
    CHECK(t.head_stride == 64);
    CHECK(t.seq_stride == 8 * 64);
    CHECK(t.batch_stride == 100 * 8 * 64);
  }

  TEST_CASE("without a GPU, plans and the device count say no_device and why") {
    if (attnjit::test::gpu_usable()) {
      MESSAGE("skipped: a GPU is usable here (tests/test_gpu_capi.cpp covers plans)");
      return;
    }
    int count = -1;
    check_error(attnjit_device_count(&count), ATTNJIT_ERROR_NO_DEVICE, {"attnjit_device_count"});
    const attnjit_problem p = small_problem();
    attnjit_forward_plan* forward = nullptr;
    check_error(attnjit_forward_plan_create(&p, nullptr, 0, &forward), ATTNJIT_ERROR_NO_DEVICE,
                {"attnjit_forward_plan_create: "});
    CHECK(forward == nullptr);
    attnjit_problem b = p;
    b.pass = ATTNJIT_PASS_BACKWARD;
    attnjit_backward_plan* backward = nullptr;
    check_error(attnjit_backward_plan_create(&b, nullptr, 0, &backward), ATTNJIT_ERROR_NO_DEVICE,
                {"attnjit_backward_plan_create: "});
    CHECK(backward == nullptr);
  }
}

#include "codegen/wgmma_source.h"

#include <attnjit/error.h>

#include <fmt/format.h>

namespace attnjit::codegen {

// "%first, %first+1, ..." over count operands, eight to a line.
static std::string operand_list(int first, int count, const char* indent) {
  std::string out;
  for (int i = 0; i < count; ++i) {
    if (i > 0) out += i % 8 == 0 ? fmt::format(",\"\n{}\"", indent) : ", ";
    out += fmt::format("%{}", first + i);
  }
  return out;
}

// "+f"(d[j][e]) for every accumulator, four to a line.
static std::string accumulator_bindings(int n, const char* indent) {
  std::string out;
  for (int i = 0; i < n / 2; ++i) {
    if (i > 0) out += i % 4 == 0 ? fmt::format(",\n{}", indent) : ", ";
    out += fmt::format("\"+f\"(d[{}][{}])", i / 4, i % 4);
  }
  return out;
}

std::string wgmma_specialization(DType dtype, int n) {
  if (n < 8 || n > 256 || n % 8 != 0)
    throw Error(ErrorKind::invalid_argument,
                fmt::format("wgmma m64nNk16 has no N = {} (8 to 256 in steps of 8)", n));
  const char* type = dtype == DType::bf16 ? "bf16" : "f16";
  const char* element = dtype == DType::bf16 ? "attnjit::bf16_t" : "attnjit::fp16_t";
  const int acc = n / 2; // accumulator registers per thread
  const char* in = "        ";
  return fmt::format(
      R"(template <> struct Wgmma<{element}, {n}> {{
  template <int TRANS_A, int TRANS_B>
  static __device__ __forceinline__ void ss(float (&d)[{groups}][4], u64 a, u64 b, bool accumulate) {{
    asm volatile(
        "{{\n.reg .pred acc;\nsetp.ne.b32 acc, %{ss_acc}, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n{n}k16.f32.{type}.{type}\n"
        "{{{d_ss}}},\n"
        "%{ss_a}, %{ss_b}, acc, 1, 1, %{ss_ta}, %{ss_t};\n}}\n"
        : {bind}
        : "l"(a), "l"(b), "r"(int(accumulate)), "n"(TRANS_A), "n"(TRANS_B));
  }}
  template <int TRANS_B>
  static __device__ __forceinline__ void rs(float (&d)[{groups}][4], const u32 (&a)[4], u64 b,
                                            bool accumulate) {{
    asm volatile(
        "{{\n.reg .pred acc;\nsetp.ne.b32 acc, %{rs_acc}, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n{n}k16.f32.{type}.{type}\n"
        "{{{d_rs}}},\n"
        "{{%{a0}, %{a1}, %{a2}, %{a3}}}, %{rs_b}, acc, 1, 1, %{rs_t};\n}}\n"
        : {bind}
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(int(accumulate)),
          "n"(TRANS_B));
  }}
}};
)",
      fmt::arg("element", element), fmt::arg("n", n), fmt::arg("groups", n / 8),
      fmt::arg("type", type), fmt::arg("d_ss", operand_list(0, acc, in)),
      fmt::arg("d_rs", operand_list(0, acc, in)),
      fmt::arg("bind", accumulator_bindings(n, "          ")), fmt::arg("ss_a", acc),
      fmt::arg("ss_b", acc + 1), fmt::arg("ss_acc", acc + 2), fmt::arg("ss_ta", acc + 3),
      fmt::arg("ss_t", acc + 4), fmt::arg("a0", acc), fmt::arg("a1", acc + 1),
      fmt::arg("a2", acc + 2), fmt::arg("a3", acc + 3), fmt::arg("rs_b", acc + 4),
      fmt::arg("rs_acc", acc + 5), fmt::arg("rs_t", acc + 6));
}

} // namespace attnjit::codegen

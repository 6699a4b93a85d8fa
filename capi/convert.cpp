#include "capi/handles.h"

#include <attnjit/error.h>

#include <fmt/format.h>

namespace attnjit::capi {
namespace {

// `value` as one of `names` (indexed by value), else Error(invalid_argument).
int checked_enum(int32_t value, const char* field, std::initializer_list<const char*> names) {
  if (value >= 0 && value < int32_t(names.size())) return value;
  std::string expected;
  int i = 0;
  for (const char* name : names)
    expected += fmt::format("{}{} ({})", i ? ", " : "", name, i), ++i;
  throw Error(ErrorKind::invalid_argument,
              fmt::format("problem.{} is {}; expected one of {}", field, value, expected));
}

bool checked_bool(int32_t value, const char* field) {
  if (value != 0 && value != 1)
    throw Error(ErrorKind::invalid_argument,
                fmt::format("{} is {}; expected 0 or 1", field, value));
  return value == 1;
}

} // namespace

AttentionProblem to_problem(const attnjit_problem& c) {
  AttentionProblem p;
  KernelSpec& s = p.spec;
  s.pass = static_cast<Pass>(
      checked_enum(c.pass, "pass", {"ATTNJIT_PASS_FORWARD", "ATTNJIT_PASS_BACKWARD"}));
  s.dtype = static_cast<DType>(
      checked_enum(c.dtype, "dtype", {"ATTNJIT_DTYPE_BF16", "ATTNJIT_DTYPE_FP16"}));
  s.head_dim_qk = c.head_dim_qk;
  s.head_dim_v = c.head_dim_v;
  s.num_heads = c.num_heads;
  s.num_kv_heads = c.num_kv_heads;
  s.layout = static_cast<Layout>(checked_enum(
      c.layout, "layout",
      {"ATTNJIT_LAYOUT_SEPARATE", "ATTNJIT_LAYOUT_PACKED_QKV", "ATTNJIT_LAYOUT_V_IN_K"}));
  s.mask =
      static_cast<Mask>(checked_enum(c.mask, "mask", {"ATTNJIT_MASK_NONE", "ATTNJIT_MASK_CAUSAL"}));
  s.deterministic = checked_bool(c.deterministic, "problem.deterministic");
  if (c.reserved != 0)
    throw Error(ErrorKind::invalid_argument,
                fmt::format("problem.reserved is {}; it must be 0 (attnjit_problem_init sets it)",
                            c.reserved));
  p.shape = {c.batch, c.seqlen_q, c.seqlen_k};
  p.softmax_scale = c.softmax_scale;
  return p;
}

TileConfig to_config(const attnjit_tile_config& c) {
  return {c.block_m,
          c.block_n,
          c.num_warps,
          c.num_stages,
          checked_bool(c.q_in_registers, "config.q_in_registers"),
          checked_bool(c.wgmma, "config.wgmma"),
          checked_bool(c.warp_specialized, "config.warp_specialized")};
}

int32_t to_c(cache::LookupSource source) {
  switch (source) {
  case cache::LookupSource::exact:
    return ATTNJIT_CONFIG_EXACT;
  case cache::LookupSource::bucket:
    return ATTNJIT_CONFIG_BUCKET;
  case cache::LookupSource::default_config:
    return ATTNJIT_CONFIG_DEFAULT;
  case cache::LookupSource::tuned:
    return ATTNJIT_CONFIG_TUNED;
  case cache::LookupSource::waited:
    return ATTNJIT_CONFIG_WAITED;
  }
  throw Error(ErrorKind::internal,
              fmt::format("lookup source {} has no C API value", static_cast<int>(source)));
}

attnjit_tile_config to_c(const TileConfig& c) {
  return {c.block_m,
          c.block_n,
          c.num_warps,
          c.num_stages,
          c.q_in_registers ? 1 : 0,
          c.wgmma ? 1 : 0,
          c.warp_specialized ? 1 : 0};
}

TensorView to_view(const attnjit_tensor& t) {
  return {t.data, t.batch_stride, t.seq_stride, t.head_stride};
}

std::string join_lines(const std::vector<std::string>& lines) {
  std::string joined;
  for (const std::string& line : lines)
    joined += (joined.empty() ? "" : "\n") + line;
  return joined;
}

} // namespace attnjit::capi

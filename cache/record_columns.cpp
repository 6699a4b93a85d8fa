#include "cache/record_columns.h"

#include <attnjit/error.h>

#include <fmt/format.h>

namespace attnjit::cache {
namespace {

template <class Enum, size_t N>
bool find_word(std::string_view word, const Enum (&values)[N], Enum& out) {
  for (Enum value : values)
    if (word == to_string(value)) {
      out = value;
      return true;
    }
  return false;
}

constexpr Pass kPasses[] = {Pass::forward, Pass::backward};
constexpr DType kDTypes[] = {DType::bf16, DType::fp16};
constexpr Layout kLayouts[] = {Layout::separate, Layout::packed_qkv, Layout::v_in_k};
constexpr Mask kMasks[] = {Mask::none, Mask::causal};

// An unknown word (a newer attnjit's value) is an error naming the row rather than a guess.
template <class Enum> Enum parse(const std::string& word, const char* column, int64_t id) {
  Enum value{};
  if (!from_string(word, value))
    throw Error(ErrorKind::cache,
                fmt::format("tuning record {}: unknown {} '{}' (written by a newer attnjit?)", id,
                            column, word));
  return value;
}

} // namespace

bool from_string(std::string_view word, Pass& out) {
  return find_word(word, kPasses, out);
}
bool from_string(std::string_view word, DType& out) {
  return find_word(word, kDTypes, out);
}
bool from_string(std::string_view word, Layout& out) {
  return find_word(word, kLayouts, out);
}
bool from_string(std::string_view word, Mask& out) {
  return find_word(word, kMasks, out);
}

void bind_spec(sql::Statement& st, const std::string& sku, const KernelSpec& spec) {
  st.bind(1, sku);
  st.bind(2, to_string(spec.pass));
  st.bind(3, to_string(spec.dtype));
  st.bind(4, spec.head_dim_qk);
  st.bind(5, spec.head_dim_v);
  st.bind(6, spec.num_heads);
  st.bind(7, spec.num_kv_heads);
  st.bind(8, to_string(spec.layout));
  st.bind(9, to_string(spec.mask));
}

void bind_key(sql::Statement& st, const RecordKey& key) {
  bind_spec(st, key.sku, key.spec);
  st.bind(10, key.shape.batch);
  st.bind(11, key.shape.seqlen_q);
  st.bind(12, key.shape.seqlen_k);
}

StoredRecord read_record(sql::Statement& st) {
  StoredRecord out;
  out.id = st.column_int(0);
  TuningRecord& r = out.record;
  int c = 1;
  const auto next_int = [&] { return int(st.column_int(c++)); };
  const auto next_i64 = [&] { return st.column_int(c++); };
  const auto next_real = [&] { return st.column_double(c++); };
  const auto next_text = [&] { return st.column_text(c++); };
  r.device.sku = next_text();
  r.device.cc_major = next_int();
  r.device.cc_minor = next_int();
  r.device.sm_count = next_int();
  r.device.driver_version = next_int();
  r.spec.pass = parse<Pass>(next_text(), "pass", out.id);
  r.spec.dtype = parse<DType>(next_text(), "dtype", out.id);
  r.spec.head_dim_qk = next_int();
  r.spec.head_dim_v = next_int();
  r.spec.num_heads = next_int();
  r.spec.num_kv_heads = next_int();
  r.spec.layout = parse<Layout>(next_text(), "layout", out.id);
  r.spec.mask = parse<Mask>(next_text(), "mask", out.id);
  r.shape.batch = next_i64();
  r.shape.seqlen_q = next_i64();
  r.shape.seqlen_k = next_i64();
  r.config.block_m = next_int();
  r.config.block_n = next_int();
  r.config.num_warps = next_int();
  r.config.num_stages = next_int();
  r.config.q_in_registers = next_int() != 0;
  r.config.wgmma = next_int() != 0;
  r.config.warp_specialized = next_int() != 0;
  r.median_ms = next_real();
  r.cv = next_real();
  r.runs = next_int();
  r.tflops = next_real();
  r.max_error = next_real();
  r.candidates_tried = next_int();
  r.candidates_pruned = next_int();
  r.candidates_rejected = next_int();
  r.noisy = next_int() != 0;
  r.nvrtc_version = next_text();
  r.template_hash = next_text();
  r.attnjit_version = next_text();
  r.created_at = next_i64();
  return out;
}

void bind_record(sql::Statement& st, const TuningRecord& r, int64_t device_id) {
  const ShapeBucket bucket = bucket_of(r.spec, r.shape);
  int i = 1;
  const auto next = [&](auto value) { st.bind(i++, value); };
  next(r.device.sku);
  next(device_id);
  next(to_string(r.spec.pass));
  next(to_string(r.spec.dtype));
  next(r.spec.head_dim_qk);
  next(r.spec.head_dim_v);
  next(r.spec.num_heads);
  next(r.spec.num_kv_heads);
  next(to_string(r.spec.layout));
  next(to_string(r.spec.mask));
  next(r.shape.batch);
  next(r.shape.seqlen_q);
  next(r.shape.seqlen_k);
  next(bucket.seqlen_q);
  next(bucket.seqlen_k);
  next(bucket.batch_heads);
  next(r.config.block_m);
  next(r.config.block_n);
  next(r.config.num_warps);
  next(r.config.num_stages);
  next(int(r.config.q_in_registers));
  next(int(r.config.wgmma));
  next(int(r.config.warp_specialized));
  next(r.median_ms);
  next(r.cv);
  next(r.runs);
  next(r.tflops);
  next(r.max_error);
  next(r.candidates_tried);
  next(r.candidates_pruned);
  next(r.candidates_rejected);
  next(int(r.noisy));
  next(r.nvrtc_version);
  next(r.template_hash);
  next(r.attnjit_version);
  next(r.created_at);
}

} // namespace attnjit::cache

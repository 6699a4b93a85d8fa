#include "apps/cmd_cache_json.h"

#include "cache/record_columns.h"

#include <attnjit/error.h>

#include <fmt/format.h>
#include <llvm/Support/FormatVariadic.h>
#include <llvm/Support/JSON.h>

namespace attnjit::apps {
namespace json = llvm::json;
namespace {

constexpr const char* kFormat = "attnjit-cache-records";
constexpr int64_t kFormatVersion = 1;

json::Value to_json(const cache::TuningRecord& r) {
  const auto& d = r.device;
  const auto& s = r.spec;
  const auto& c = r.config;
  return json::Object{
      {"device", json::Object{{"sku", d.sku},
                              {"cc_major", d.cc_major},
                              {"cc_minor", d.cc_minor},
                              {"sm_count", d.sm_count},
                              {"driver_version", d.driver_version}}},
      {"spec", json::Object{{"pass", to_string(s.pass)},
                            {"dtype", to_string(s.dtype)},
                            {"head_dim_qk", s.head_dim_qk},
                            {"head_dim_v", s.head_dim_v},
                            {"num_heads", s.num_heads},
                            {"num_kv_heads", s.num_kv_heads},
                            {"layout", to_string(s.layout)},
                            {"mask", to_string(s.mask)}}},
      {"shape", json::Object{{"batch", r.shape.batch},
                             {"seqlen_q", r.shape.seqlen_q},
                             {"seqlen_k", r.shape.seqlen_k}}},
      {"config", json::Object{{"block_m", c.block_m},
                              {"block_n", c.block_n},
                              {"num_warps", c.num_warps},
                              {"num_stages", c.num_stages},
                              {"q_in_registers", c.q_in_registers},
                              {"wgmma", c.wgmma},
                              {"warp_specialized", c.warp_specialized}}},
      {"median_ms", r.median_ms},
      {"cv", r.cv},
      {"runs", r.runs},
      {"tflops", r.tflops},
      {"max_error", r.max_error},
      {"candidates_tried", r.candidates_tried},
      {"candidates_pruned", r.candidates_pruned},
      {"candidates_rejected", r.candidates_rejected},
      {"noisy", r.noisy},
      {"nvrtc_version", r.nvrtc_version},
      {"template_hash", r.template_hash},
      {"attnjit_version", r.attnjit_version},
      {"created_at", r.created_at},
  };
}

// Reads fields of one JSON object, naming the place of anything missing or mistyped.
class Reader {
public:
  Reader(const json::Object* object, std::string where)
      : object_(object), where_(std::move(where)) {
    if (!object_) fail("", "an object");
  }
  Reader child(const char* key) const {
    return Reader(object_->getObject(key), fmt::format("{}.{}", where_, key));
  }
  int64_t integer(const char* key) const {
    if (auto v = object_->getInteger(key)) return *v;
    fail(key, "an integer");
  }
  int small(const char* key) const { return int(integer(key)); }
  double number(const char* key) const {
    if (auto v = object_->getNumber(key)) return *v;
    fail(key, "a number");
  }
  bool boolean(const char* key) const {
    if (auto v = object_->getBoolean(key)) return *v;
    fail(key, "true or false");
  }
  // A key added after the format's first version: absent (an older export) is `fallback`,
  // present it must be true or false.
  bool optional_boolean(const char* key, bool fallback) const {
    return object_->get(key) ? boolean(key) : fallback;
  }
  std::string text(const char* key) const {
    if (auto v = object_->getString(key)) return v->str();
    fail(key, "a string");
  }
  template <class Enum> Enum word(const char* key) const {
    Enum value{};
    if (!cache::from_string(text(key), value)) fail(key, "a known word");
    return value;
  }

private:
  [[noreturn]] void fail(const char* key, const char* what) const {
    throw Error(ErrorKind::invalid_argument,
                fmt::format("{}{}{}: expected {}", where_, *key ? "." : "", key, what));
  }
  const json::Object* object_;
  std::string where_;
};

cache::TuningRecord from_json(const Reader& in) {
  cache::TuningRecord r;
  const Reader d = in.child("device");
  r.device = {d.text("sku"), d.small("cc_major"), d.small("cc_minor"), d.small("sm_count"),
              d.small("driver_version")};
  const Reader s = in.child("spec");
  r.spec = {s.word<Pass>("pass"),     s.word<DType>("dtype"), s.small("head_dim_qk"),
            s.small("head_dim_v"),    s.small("num_heads"),   s.small("num_kv_heads"),
            s.word<Layout>("layout"), s.word<Mask>("mask")};
  const Reader shape = in.child("shape");
  r.shape = {shape.integer("batch"), shape.integer("seqlen_q"), shape.integer("seqlen_k")};
  const Reader c = in.child("config");
  r.config = {c.small("block_m"),
              c.small("block_n"),
              c.small("num_warps"),
              c.small("num_stages"),
              c.boolean("q_in_registers"),
              c.optional_boolean("wgmma", false),
              c.optional_boolean("warp_specialized", false)};
  r.median_ms = in.number("median_ms");
  r.cv = in.number("cv");
  r.runs = in.small("runs");
  r.tflops = in.number("tflops");
  r.max_error = in.number("max_error");
  r.candidates_tried = in.small("candidates_tried");
  r.candidates_pruned = in.small("candidates_pruned");
  r.candidates_rejected = in.small("candidates_rejected");
  r.noisy = in.boolean("noisy");
  r.nvrtc_version = in.text("nvrtc_version");
  r.template_hash = in.text("template_hash");
  r.attnjit_version = in.text("attnjit_version");
  r.created_at = in.integer("created_at");
  return r;
}

} // namespace

std::string records_to_json(const std::vector<cache::TuningRecord>& records) {
  json::Array array;
  for (const cache::TuningRecord& r : records)
    array.push_back(to_json(r));
  const json::Value document =
      json::Object{{"format", kFormat}, {"version", kFormatVersion}, {"records", std::move(array)}};
  return llvm::formatv("{0:2}", document).str() + "\n";
}

std::vector<cache::TuningRecord> records_from_json(const std::string& text,
                                                   const std::string& origin) {
  llvm::Expected<json::Value> parsed = json::parse(text);
  if (!parsed)
    throw Error(ErrorKind::invalid_argument,
                fmt::format("{}: not JSON: {}", origin, llvm::toString(parsed.takeError())));
  const json::Object* top = parsed->getAsObject();
  if (!top || top->getString("format") != llvm::StringRef(kFormat))
    throw Error(
        ErrorKind::invalid_argument,
        fmt::format("{}: not an attnjit record export (no \"format\": \"{}\")", origin, kFormat));
  if (top->getInteger("version") != kFormatVersion)
    throw Error(ErrorKind::invalid_argument,
                fmt::format("{}: export format version {} is not {}, the one this attnjit reads",
                            origin, top->getInteger("version").getValueOr(-1), kFormatVersion));
  const json::Array* records = top->getArray("records");
  if (!records) throw Error(ErrorKind::invalid_argument, origin + ": no \"records\" array");
  std::vector<cache::TuningRecord> out;
  for (size_t i = 0; i < records->size(); ++i)
    out.push_back(
        from_json(Reader((*records)[i].getAsObject(), fmt::format("{}: records[{}]", origin, i))));
  return out;
}

} // namespace attnjit::apps

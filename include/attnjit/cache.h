// What the tuning database stores: one TuningRecord per (GPU SKU, KernelSpec, AttentionShape),
// written by the tuner and read back when a plan picks its TileConfig. Plain aggregates; the
// database itself (cache/*.h) is internal. docs/CACHE.md describes the schema and lookup order.
#pragma once

#include <attnjit/spec.h>

#include <cstdint>
#include <string>

namespace attnjit {
struct DeviceInfo;
}

namespace attnjit::cache {

// The GPU a record was measured on. `sku` (the driver's device name) is what lookups match on;
// the rest is provenance, so a record from another driver still serves the same card.
struct DeviceFingerprint {
  std::string sku; // "NVIDIA H100 80GB HBM3"
  int cc_major = 0, cc_minor = 0;
  int sm_count = 0;
  int driver_version = 0; // 13000 for CUDA 13.0

  bool operator==(const DeviceFingerprint&) const = default;
};

DeviceFingerprint fingerprint_of(const DeviceInfo& device);

// The tuner's verdict for one key, with enough provenance to judge it later.
struct TuningRecord {
  DeviceFingerprint device;
  KernelSpec spec;
  AttentionShape shape;
  TileConfig config; // the winner

  double median_ms = 0;
  double cv = 0; // spread of the timed runs: standard deviation / mean
  int runs = 0;  // timed repetitions behind median_ms (merge prefers more)
  double tflops = 0;
  double max_error = 0; // largest |out - reference| of the winner
  int candidates_tried = 0;
  int candidates_pruned = 0;   // refused by can_implement before timing
  int candidates_rejected = 0; // wrong answers or crashes
  bool noisy = false;          // the spread stayed above the quality gate after re-measuring

  std::string nvrtc_version;   // "13.0"
  std::string template_hash;   // codegen::template_hash() of the tuning build
  std::string attnjit_version; // "0.1.0"
  int64_t created_at = 0;      // seconds since the Unix epoch, UTC

  bool operator==(const TuningRecord&) const = default;
};

// What a lookup is keyed on.
struct RecordKey {
  std::string sku;
  KernelSpec spec;
  AttentionShape shape;

  bool operator==(const RecordKey&) const = default;
};

RecordKey key_of(const TuningRecord& record);

// One line naming every key field, also the claims table's primary key:
// "NVIDIA H100 80GB HBM3|fwd|bf16|128|128|32|32|separate|none|B=1|Sq=4096|Sk=4096".
std::string to_string(const RecordKey& key);

// Which of the three lookup levels produced a config; or, with tune-on-miss (plan.h), that the
// plan tuned the key itself (`tuned`) or waited for the process or thread that did (`waited`).
enum class LookupSource { exact, bucket, default_config, tuned, waited };
const char* to_string(LookupSource source);

// The bucket a shape falls in (docs/CACHE.md, "Lookup"): sequence lengths rounded up to a power
// of two, and batch * heads rounded up to a power of two.
struct ShapeBucket {
  int64_t seqlen_q = 0, seqlen_k = 0;
  int64_t batch_heads = 0;

  bool operator==(const ShapeBucket&) const = default;
};

ShapeBucket bucket_of(const KernelSpec& spec, const AttentionShape& shape);
std::string to_string(const ShapeBucket& bucket);

} // namespace attnjit::cache

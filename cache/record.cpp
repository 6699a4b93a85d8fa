// The key and bucket rules of include/attnjit/cache.h.
#include <attnjit/cache.h>
#include <attnjit/device.h>

#include <fmt/format.h>

namespace attnjit::cache {
namespace {

// The smallest power of two >= n; 0 stays 0 (an empty key sequence is its own bucket).
int64_t round_up_pow2(int64_t n) {
  if (n <= 0) return 0;
  int64_t p = 1;
  while (p < n)
    p <<= 1;
  return p;
}

} // namespace

DeviceFingerprint fingerprint_of(const DeviceInfo& device) {
  return {device.name, device.cc_major, device.cc_minor, device.sm_count, device.driver_version};
}

RecordKey key_of(const TuningRecord& record) {
  return {record.device.sku, record.spec, record.shape};
}

std::string to_string(const RecordKey& key) {
  const KernelSpec& s = key.spec;
  return fmt::format("{}|{}|{}|{}|{}|{}|{}|{}|{}|B={}|Sq={}|Sk={}", key.sku, to_string(s.pass),
                     to_string(s.dtype), s.head_dim_qk, s.head_dim_v, s.num_heads, s.num_kv_heads,
                     to_string(s.layout), to_string(s.mask), key.shape.batch, key.shape.seqlen_q,
                     key.shape.seqlen_k);
}

const char* to_string(LookupSource source) {
  switch (source) {
  case LookupSource::exact:
    return "exact";
  case LookupSource::bucket:
    return "bucket";
  case LookupSource::default_config:
    return "default";
  case LookupSource::tuned:
    return "tuned on miss";
  case LookupSource::waited:
    return "tuned by another process on miss";
  }
  return "unknown";
}

// Powers of two because the kernels' cost steps with the number of blocks along each sequence,
// and batch * heads (not batch alone) because it is the other grid dimension: together they say
// how full the GPU is, which is what moves the best tile size.
ShapeBucket bucket_of(const KernelSpec& spec, const AttentionShape& shape) {
  return {round_up_pow2(shape.seqlen_q), round_up_pow2(shape.seqlen_k),
          round_up_pow2(shape.batch * spec.num_heads)};
}

// "Sq 2049..4096": the range of values that round up to the bucket's power of two.
static std::string range(const char* name, int64_t p) {
  return fmt::format("{} {}..{}", name, p <= 1 ? p : p / 2 + 1, p);
}

std::string to_string(const ShapeBucket& b) {
  return fmt::format("{} {} {}", range("Sq", b.seqlen_q), range("Sk", b.seqlen_k),
                     range("B*H", b.batch_heads));
}

} // namespace attnjit::cache

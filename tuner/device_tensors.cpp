#include "tuner/device_tensors.h"

#include <attnjit/error.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>

namespace attnjit::tuner {
namespace {

std::string first_difference(const std::vector<unsigned char>& bytes, size_t base) {
  for (size_t i = 0; i < bytes.size(); ++i) {
    const auto expect = static_cast<unsigned char>(kPoisonWord >> (8 * ((base + i) % 4)));
    if (bytes[i] != expect)
      return fmt::format("byte {} is {:#04x}, expected {:#04x}", i, bytes[i], expect);
  }
  return {};
}

TensorView bshd(const void* data, int64_t seqlen, int64_t heads, int64_t head_dim) {
  return {data, seqlen * heads * head_dim, heads * head_dim, head_dim};
}

} // namespace

GuardedBuffer::GuardedBuffer(size_t payload_bytes)
    // Whole words, so one 32-bit fill covers everything; the padding is guard too.
    : buffer_((2 * kGuardBytes + payload_bytes + 3) / 4 * 4), payload_(payload_bytes) {
  buffer_.fill32(kPoisonWord);
}

void GuardedBuffer::upload(const void* src, size_t bytes) {
  if (bytes > payload_) throw Error(ErrorKind::internal, "GuardedBuffer::upload past the payload");
  if (bytes) buffer_.upload(src, bytes, kGuardBytes);
}

void GuardedBuffer::download(void* dst, size_t bytes) const {
  if (bytes > payload_)
    throw Error(ErrorKind::internal, "GuardedBuffer::download past the payload");
  if (bytes) buffer_.download(dst, bytes, kGuardBytes);
}

std::string GuardedBuffer::check_guards() const {
  std::vector<unsigned char> bytes(kGuardBytes);
  buffer_.download(bytes.data(), kGuardBytes, 0);
  if (std::string diff = first_difference(bytes, 0); !diff.empty()) return "front guard: " + diff;
  const size_t back = kGuardBytes + payload_;
  bytes.resize(buffer_.size() - back);
  buffer_.download(bytes.data(), bytes.size(), back);
  if (std::string diff = first_difference(bytes, back); !diff.empty()) return "back guard: " + diff;
  return {};
}

DeviceInputs upload_inputs(const HostAttentionData& data) {
  const KernelSpec& spec = data.problem.spec;
  const AttentionShape& shape = data.problem.shape;
  const int64_t sq = shape.seqlen_q, sk = shape.seqlen_k;
  const int64_t h = spec.num_heads, kv = spec.num_kv_heads;
  const std::vector<uint16_t> q = to_bits(data.q, spec.dtype);
  const std::vector<uint16_t> k = to_bits(data.k, spec.dtype);
  const std::vector<uint16_t> v = to_bits(data.v, spec.dtype);
  DeviceInputs in;
  if (spec.layout == Layout::packed_qkv) {
    // validate() demands H == KV and one head dim; Sq == Sk is what one buffer can hold.
    if (sq != sk || q.size() != k.size() || k.size() != v.size())
      throw Error(ErrorKind::invalid_argument, "packed QKV needs Q, K and V of one shape");
    const size_t row = size_t(h * spec.head_dim_qk); // one (batch, seq) position of q, k or v
    std::vector<uint16_t> qkv(3 * q.size());
    for (size_t pos = 0; pos < q.size() / row; ++pos)
      for (int i = 0; i < 3; ++i)
        std::memcpy(&qkv[(3 * pos + i) * row], &(i == 0 ? q : i == 1 ? k : v)[pos * row], row * 2);
    GuardedBuffer& buffer = in.buffers.emplace_back(qkv.size() * 2);
    buffer.upload(qkv.data(), qkv.size() * 2);
    const auto* base = static_cast<const uint16_t*>(buffer.data());
    const int64_t token = 3 * int64_t(row);
    in.q = {base, sq * token, token, spec.head_dim_qk};
    in.k = {base + row, sq * token, token, spec.head_dim_qk};
    in.v = {base + 2 * row, sq * token, token, spec.head_dim_qk};
    return in;
  }
  in.buffers.reserve(3);
  for (const std::vector<uint16_t>* t : {&q, &k, &v}) {
    GuardedBuffer& buffer = in.buffers.emplace_back(t->size() * 2);
    buffer.upload(t->data(), t->size() * 2);
  }
  in.q = bshd(in.buffers[0].data(), sq, h, spec.head_dim_qk);
  in.k = bshd(in.buffers[1].data(), sk, kv, spec.head_dim_qk);
  in.v = bshd(in.buffers[2].data(), sk, kv, spec.head_dim_v);
  return in;
}

DeviceOutputs make_outputs(const AttentionProblem& problem) {
  const KernelSpec& s = problem.spec;
  const AttentionShape& sh = problem.shape;
  return {GuardedBuffer(size_t(sh.batch * sh.seqlen_q * s.num_heads * s.head_dim_v) * 2),
          GuardedBuffer(size_t(sh.batch * s.num_heads * sh.seqlen_q) * sizeof(float))};
}

ForwardArgs forward_args(const DeviceInputs& in, const DeviceOutputs& out,
                         const AttentionProblem& problem) {
  ForwardArgs args;
  args.q = in.q, args.k = in.k, args.v = in.v;
  args.o =
      bshd(out.o.data(), problem.shape.seqlen_q, problem.spec.num_heads, problem.spec.head_dim_v);
  args.lse = static_cast<float*>(out.lse.data());
  return args;
}

std::string check_guards(const DeviceInputs& in, const DeviceOutputs& out) {
  std::string report;
  const auto check = [&](const GuardedBuffer& buffer, const std::string& name) {
    if (std::string damage = buffer.check_guards(); !damage.empty())
      report += fmt::format("{}{}: {}", report.empty() ? "" : "; ", name, damage);
  };
  for (size_t i = 0; i < in.buffers.size(); ++i)
    check(in.buffers[i], in.buffers.size() == 1 ? "qkv" : std::string(1, "qkv"[i]));
  check(out.o, "o");
  check(out.lse, "lse");
  return report;
}

HostOutputs download(const DeviceOutputs& out) {
  HostOutputs host{std::vector<uint16_t>(out.o.size() / 2),
                   std::vector<float>(out.lse.size() / sizeof(float))};
  out.o.download(host.o.data(), out.o.size());
  out.lse.download(host.lse.data(), out.lse.size());
  return host;
}

int64_t count_nan(const HostOutputs& out, DType dtype) {
  const int64_t o = tuner::count_nan(out.o, dtype);
  return o + std::count_if(out.lse.begin(), out.lse.end(), [](float x) { return std::isnan(x); });
}

ForwardRows rows_of(const HostOutputs& out, const AttentionProblem& problem,
                    const std::vector<RowId>& rows) {
  const int64_t sq = problem.shape.seqlen_q, h = problem.spec.num_heads;
  const int64_t dv = problem.spec.head_dim_v;
  ForwardRows result;
  result.rows = rows;
  result.o.reserve(rows.size() * size_t(dv));
  for (const RowId& row : rows) {
    const uint16_t* o = &out.o[size_t(((row.batch * sq + row.query) * h + row.head) * dv)];
    for (int64_t d = 0; d < dv; ++d)
      result.o.push_back(from_bits(o[d], problem.spec.dtype));
    result.lse.push_back(out.lse[size_t((row.batch * h + row.head) * sq + row.query)]);
  }
  return result;
}

} // namespace attnjit::tuner

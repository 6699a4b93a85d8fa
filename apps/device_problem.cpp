#include "apps/device_problem.h"

#include <attnjit/error.h>

#include <cstdint>

namespace attnjit::apps {
namespace {

// Quiet NaNs: what no finished kernel row can hold.
constexpr uint16_t kBf16NaN = 0x7fc0, kFp16NaN = 0x7e00;
constexpr uint32_t kFloatNaN = 0x7fc00000;

// Interleaves q, k and v token by token into [B, S, 3, H, D].
std::vector<uint16_t> interleave(const std::vector<uint16_t>& q, const std::vector<uint16_t>& k,
                                 const std::vector<uint16_t>& v, int64_t token_elems) {
  std::vector<uint16_t> out;
  out.reserve(q.size() * 3);
  for (size_t first = 0; first < q.size(); first += token_elems)
    for (const std::vector<uint16_t>* t : {&q, &k, &v})
      out.insert(out.end(), t->begin() + first, t->begin() + first + token_elems);
  return out;
}

} // namespace

DeviceProblem upload(const tuner::HostAttentionData& data) {
  const KernelSpec& spec = data.problem.spec;
  const AttentionShape& shape = data.problem.shape;
  const int64_t q_token = int64_t(spec.num_heads) * spec.head_dim_qk; // one token's Q, elements
  const bool packed = spec.layout == Layout::packed_qkv;
  // validate() already demands this of packed QKV; the interleaving below relies on it.
  if (packed && (data.q.size() != data.k.size() || data.k.size() != data.v.size()))
    throw Error(ErrorKind::invalid_argument, "packed QKV needs Q, K and V of one shape");

  const std::vector<uint16_t> q = tuner::to_bits(data.q, spec.dtype);
  const std::vector<uint16_t> k = tuner::to_bits(data.k, spec.dtype);
  // v_in_k: no V tensor; args.v is K's view, as ForwardPlan::run requires.
  const bool v_in_k = spec.layout == Layout::v_in_k;
  const std::vector<uint16_t> v =
      v_in_k ? std::vector<uint16_t>{} : tuner::to_bits(data.v, spec.dtype);

  DeviceProblem d;
  d.dtype = spec.dtype;
  d.qkv = runtime::DeviceBuffer((q.size() + k.size() + v.size()) * sizeof(uint16_t));
  if (packed) {
    const std::vector<uint16_t> bits = interleave(q, k, v, q_token);
    d.qkv.upload(bits.data(), d.qkv.size());
  } else { // q, then k, then v, each contiguous [B, S, heads, D]
    size_t offset = 0;
    for (const std::vector<uint16_t>* t : {&q, &k, &v}) {
      d.qkv.upload(t->data(), t->size() * sizeof(uint16_t), offset);
      offset += t->size() * sizeof(uint16_t);
    }
  }
  const auto* base = static_cast<const uint16_t*>(d.qkv.data());
  if (packed) {
    const int64_t token_stride = 3 * q_token;
    for (int i = 0; i < 3; ++i) {
      TensorView view{base + i * q_token, shape.seqlen_q * token_stride, token_stride,
                      spec.head_dim_qk};
      (i == 0 ? d.args.q : i == 1 ? d.args.k : d.args.v) = view;
    }
  } else {
    d.args.q = contiguous_bshd(base, shape.seqlen_q, spec.num_heads, spec.head_dim_qk);
    d.args.k =
        contiguous_bshd(base + data.q.size(), shape.seqlen_k, spec.num_kv_heads, spec.head_dim_qk);
    d.args.v = v_in_k ? d.args.k
                      : contiguous_bshd(base + data.q.size() + data.k.size(), shape.seqlen_k,
                                        spec.num_kv_heads, spec.head_dim_v);
  }

  const int64_t o_elems = shape.batch * shape.seqlen_q * spec.num_heads * spec.head_dim_v;
  d.o = runtime::DeviceBuffer(size_t(o_elems) * sizeof(uint16_t));
  d.lse =
      runtime::DeviceBuffer(size_t(shape.batch * spec.num_heads * shape.seqlen_q) * sizeof(float));
  d.args.o = contiguous_bshd(d.o.data(), shape.seqlen_q, spec.num_heads, spec.head_dim_v);
  d.args.lse = static_cast<float*>(d.lse.data());
  return d;
}

void poison_outputs(DeviceProblem& device) {
  device.o.fill16(device.dtype == DType::bf16 ? kBf16NaN : kFp16NaN);
  device.lse.fill32(kFloatNaN);
}

tuner::ForwardRows download_rows(const DeviceProblem& device, const AttentionProblem& problem,
                                 const std::vector<tuner::RowId>& rows) {
  const int64_t heads = problem.spec.num_heads, dv = problem.spec.head_dim_v;
  const int64_t sq = problem.shape.seqlen_q;
  std::vector<uint16_t> o(device.o.size() / sizeof(uint16_t));
  std::vector<float> lse(device.lse.size() / sizeof(float));
  device.o.download(o.data(), device.o.size());
  device.lse.download(lse.data(), device.lse.size());

  tuner::ForwardRows out;
  out.rows = rows;
  out.o.reserve(rows.size() * dv);
  out.lse.reserve(rows.size());
  for (const tuner::RowId& r : rows) {
    const int64_t o_row = ((r.batch * sq + r.query) * heads + r.head) * dv; // [B, Sq, H, Dv]
    for (int64_t i = 0; i < dv; ++i)
      out.o.push_back(tuner::from_bits(o[o_row + i], device.dtype));
    out.lse.push_back(lse[(r.batch * heads + r.head) * sq + r.query]); // [B, H, Sq]
  }
  return out;
}

DeviceGradients upload_backward(const tuner::HostBackwardData& data, const DeviceProblem& forward,
                                size_t workspace_bytes) {
  const KernelSpec& spec = data.inputs.problem.spec;
  const AttentionShape& shape = data.inputs.problem.shape;
  const int64_t q_elems = shape.batch * shape.seqlen_q * spec.num_heads * spec.head_dim_qk;
  const int64_t k_elems = shape.batch * shape.seqlen_k * spec.num_kv_heads * spec.head_dim_qk;
  const int64_t v_elems = shape.batch * shape.seqlen_k * spec.num_kv_heads * spec.head_dim_v;

  DeviceGradients g;
  g.dtype = spec.dtype;
  const std::vector<uint16_t> dout = tuner::to_bits(data.dout, spec.dtype);
  g.dout = runtime::DeviceBuffer(dout.size() * sizeof(uint16_t));
  g.dout.upload(dout.data(), g.dout.size());
  g.grads = runtime::DeviceBuffer(size_t(q_elems + k_elems + v_elems) * sizeof(uint16_t));
  g.workspace = runtime::DeviceBuffer(workspace_bytes);

  auto* base = static_cast<uint16_t*>(g.grads.data());
  if (spec.layout == Layout::packed_qkv) { // the input's strides, one slice apiece
    const int64_t token = int64_t(spec.num_heads) * spec.head_dim_qk, stride = 3 * token;
    for (int i = 0; i < 3; ++i) {
      TensorView view{base + i * token, shape.seqlen_q * stride, stride, spec.head_dim_qk};
      (i == 0 ? g.args.dq : i == 1 ? g.args.dk : g.args.dv) = view;
    }
  } else {
    g.args.dq = contiguous_bshd(base, shape.seqlen_q, spec.num_heads, spec.head_dim_qk);
    g.args.dk =
        contiguous_bshd(base + q_elems, shape.seqlen_k, spec.num_kv_heads, spec.head_dim_qk);
    g.args.dv = contiguous_bshd(base + q_elems + k_elems, shape.seqlen_k, spec.num_kv_heads,
                                spec.head_dim_v);
  }
  g.args.q = forward.args.q;
  g.args.k = forward.args.k;
  g.args.v = forward.args.v;
  g.args.o = forward.args.o;
  g.args.lse = forward.args.lse;
  g.args.dout = contiguous_bshd(g.dout.data(), shape.seqlen_q, spec.num_heads, spec.head_dim_v);
  g.args.workspace = g.workspace.data();
  g.args.workspace_bytes = workspace_bytes;
  return g;
}

void poison_gradients(DeviceGradients& device) {
  device.grads.fill16(device.dtype == DType::bf16 ? kBf16NaN : kFp16NaN);
}

tuner::BackwardRows download_gradients(const DeviceGradients& device,
                                       const AttentionProblem& problem,
                                       const std::vector<tuner::RowId>& rows,
                                       const std::vector<tuner::KeyId>& keys) {
  std::vector<uint16_t> grads(device.grads.size() / sizeof(uint16_t));
  device.grads.download(grads.data(), device.grads.size());
  const auto* base = static_cast<const uint16_t*>(device.grads.data());
  // Row (b, s, h) of a gradient view, as values of the host copy.
  const auto append = [&](std::vector<double>& to, const TensorView& view, int64_t dim, int64_t b,
                          int64_t s, int64_t h) {
    const int64_t at = (static_cast<const uint16_t*>(view.data) - base) + b * view.batch_stride +
                       s * view.seq_stride + h * view.head_stride;
    for (int64_t i = 0; i < dim; ++i)
      to.push_back(tuner::from_bits(grads[at + i], device.dtype));
  };
  tuner::BackwardRows out;
  out.rows = rows;
  out.keys = keys;
  for (const tuner::RowId& r : rows)
    append(out.dq, device.args.dq, problem.spec.head_dim_qk, r.batch, r.query, r.head);
  for (const tuner::KeyId& k : keys) {
    append(out.dk, device.args.dk, problem.spec.head_dim_qk, k.batch, k.key, k.kv_head);
    append(out.dv, device.args.dv, problem.spec.head_dim_v, k.batch, k.key, k.kv_head);
  }
  return out;
}

} // namespace attnjit::apps

#include "tuner/device_gradients.h"

#include <attnjit/error.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace attnjit::tuner {
namespace {

TensorView bshd(const void* data, int64_t seqlen, int64_t heads, int64_t head_dim) {
  return {data, seqlen * heads * head_dim, heads * head_dim, head_dim};
}

// Element (b, s, h, 0) of `view`, as an index into the host copy of the buffer that holds it.
struct Located {
  const std::vector<uint16_t>* values;
  int64_t at;
};

Located locate(const HostGradients& host, const DeviceGradients& grads, const TensorView& view,
               int64_t b, int64_t s, int64_t h) {
  const auto* p = static_cast<const char*>(view.data);
  for (size_t i = 0; i < grads.buffers.size(); ++i) {
    const auto* begin = static_cast<const char*>(grads.buffers[i].data());
    if (p >= begin && p < begin + grads.buffers[i].size())
      return {&host.buffers[i],
              (p - begin) / 2 + b * view.batch_stride + s * view.seq_stride + h * view.head_stride};
  }
  throw Error(ErrorKind::internal, "gradient view outside the gradient buffers");
}

} // namespace

DeviceGradients make_gradients(const AttentionProblem& problem, size_t workspace_bytes) {
  const KernelSpec& spec = problem.spec;
  const AttentionShape& shape = problem.shape;
  DeviceGradients g;
  g.workspace = GuardedBuffer(workspace_bytes);
  if (spec.layout == Layout::packed_qkv) { // the input's strides, one slice apiece
    const int64_t row = int64_t(spec.num_heads) * spec.head_dim_qk, token = 3 * row;
    const GuardedBuffer& buffer =
        g.buffers.emplace_back(size_t(shape.batch * shape.seqlen_q * token) * 2);
    const auto* base = static_cast<const uint16_t*>(buffer.data());
    g.dq = {base, shape.seqlen_q * token, token, spec.head_dim_qk};
    g.dk = {base + row, shape.seqlen_q * token, token, spec.head_dim_qk};
    g.dv = {base + 2 * row, shape.seqlen_q * token, token, spec.head_dim_qk};
    return g;
  }
  const int64_t q = shape.batch * shape.seqlen_q * spec.num_heads * spec.head_dim_qk;
  const int64_t k = shape.batch * shape.seqlen_k * spec.num_kv_heads * spec.head_dim_qk;
  const int64_t v = shape.batch * shape.seqlen_k * spec.num_kv_heads * spec.head_dim_v;
  g.buffers.reserve(3);
  for (int64_t elements : {q, k, v})
    g.buffers.emplace_back(size_t(elements) * 2);
  g.dq = bshd(g.buffers[0].data(), shape.seqlen_q, spec.num_heads, spec.head_dim_qk);
  g.dk = bshd(g.buffers[1].data(), shape.seqlen_k, spec.num_kv_heads, spec.head_dim_qk);
  g.dv = bshd(g.buffers[2].data(), shape.seqlen_k, spec.num_kv_heads, spec.head_dim_v);
  return g;
}

GuardedBuffer upload_dout(const HostBackwardData& data) {
  const std::vector<uint16_t> bits = to_bits(data.dout, data.inputs.problem.spec.dtype);
  GuardedBuffer dout(bits.size() * 2);
  dout.upload(bits.data(), bits.size() * 2);
  return dout;
}

BackwardArgs backward_args(const DeviceInputs& in, const DeviceOutputs& forward,
                           const GuardedBuffer& dout, const DeviceGradients& grads,
                           const AttentionProblem& problem) {
  const KernelSpec& s = problem.spec;
  BackwardArgs a;
  a.q = in.q, a.k = in.k, a.v = in.v;
  a.o = bshd(forward.o.data(), problem.shape.seqlen_q, s.num_heads, s.head_dim_v);
  a.dout = bshd(dout.data(), problem.shape.seqlen_q, s.num_heads, s.head_dim_v);
  a.lse = static_cast<const float*>(forward.lse.data());
  a.dq = grads.dq, a.dk = grads.dk, a.dv = grads.dv;
  a.workspace = grads.workspace.data();
  a.workspace_bytes = grads.workspace.size();
  return a;
}

std::string check_guards(const DeviceGradients& grads, const GuardedBuffer& dout) {
  std::string report;
  const auto check = [&](const GuardedBuffer& buffer, const std::string& name) {
    if (std::string damage = buffer.check_guards(); !damage.empty())
      report += fmt::format("{}{}: {}", report.empty() ? "" : "; ", name, damage);
  };
  static const char* const names[] = {"dq", "dk", "dv"};
  for (size_t i = 0; i < grads.buffers.size(); ++i)
    check(grads.buffers[i], grads.buffers.size() == 1 ? "packed dq/dk/dv" : names[i]);
  check(grads.workspace, "workspace");
  check(dout, "dout");
  return report;
}

HostGradients download(const DeviceGradients& grads) {
  HostGradients host;
  for (const GuardedBuffer& buffer : grads.buffers) {
    std::vector<uint16_t>& values = host.buffers.emplace_back(buffer.size() / 2);
    buffer.download(values.data(), buffer.size());
  }
  return host;
}

int64_t count_nan(const HostGradients& host, DType dtype) {
  int64_t nans = 0;
  for (const std::vector<uint16_t>& values : host.buffers)
    nans += tuner::count_nan(values, dtype);
  return nans;
}

BackwardRows gradient_rows(const HostGradients& host, const DeviceGradients& grads,
                           const AttentionProblem& problem, const std::vector<RowId>& rows,
                           const std::vector<KeyId>& keys) {
  const KernelSpec& s = problem.spec;
  const auto append = [&](std::vector<double>& to, const TensorView& view, int64_t dim, int64_t b,
                          int64_t pos, int64_t h) {
    const Located e = locate(host, grads, view, b, pos, h);
    for (int64_t d = 0; d < dim; ++d)
      to.push_back(from_bits((*e.values)[size_t(e.at + d)], s.dtype));
  };
  BackwardRows out;
  out.rows = rows;
  out.keys = keys;
  for (const RowId& r : rows)
    append(out.dq, grads.dq, s.head_dim_qk, r.batch, r.query, r.head);
  for (const KeyId& k : keys) {
    append(out.dk, grads.dk, s.head_dim_qk, k.batch, k.key, k.kv_head);
    append(out.dv, grads.dv, s.head_dim_v, k.batch, k.key, k.kv_head);
  }
  return out;
}

} // namespace attnjit::tuner

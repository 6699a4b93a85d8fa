#include <attnjit/device.h>
#include <attnjit/error.h>
#include <attnjit/plan.h>

#include "codegen/codegen.h"
#include "codegen/tile_rules.h"
#include "runtime/driver.h"
#include "runtime/kernel_loader.h"

#include <attnjit/fwd_params.h>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <climits>

namespace attnjit {

TensorView contiguous_bshd(const void* data, int64_t seqlen, int64_t heads, int64_t head_dim) {
  return {data, seqlen * heads * head_dim, heads * head_dim, head_dim};
}

struct ForwardPlan::Impl {
  AttentionProblem problem;
  TileConfig config;
  int device = 0;
  codegen::GeneratedKernel generated;
  std::shared_ptr<const runtime::LoadedKernel> kernel;
  int num_m_blocks = 0;
};

ForwardPlan::ForwardPlan(const AttentionProblem& problem, std::optional<TileConfig> config,
                         int device)
    : impl_(std::make_unique<Impl>()) {
  validate(problem);
  if (problem.spec.pass != Pass::forward)
    throw Error(ErrorKind::invalid_argument, "ForwardPlan needs a forward spec");
  runtime::use_device(device);
  const DeviceInfo info = query_device(device);
  codegen::ArchLimits limits{info.arch(), info.max_smem_per_block, 1024};
  Impl& m = *impl_;
  m.problem = problem;
  m.device = device;
  m.config = config ? *config : codegen::default_config(problem.spec, limits);
  if (std::string why = codegen::why_not(problem.spec, m.config, limits); !why.empty())
    throw Error(ErrorKind::invalid_argument,
                fmt::format("config {} cannot run {} on {} ({}): {}", to_string(m.config),
                            to_string(problem.spec), info.name, info.arch(), why));
  m.num_m_blocks =
      static_cast<int>((problem.shape.seqlen_q + m.config.block_m - 1) / m.config.block_m);
  const int64_t blocks = int64_t(m.num_m_blocks) * problem.shape.batch * problem.spec.num_heads;
  if (blocks > INT_MAX)
    throw Error(ErrorKind::invalid_argument,
                fmt::format("{} x {} needs {} thread blocks, over the grid limit {}",
                            to_string(problem.shape), to_string(problem.spec), blocks, INT_MAX));
  m.generated = codegen::generate_forward(problem.spec, m.config);
  runtime::CompileRequest request{
      m.generated.source, m.generated.slug, {m.generated.name_expression}, info.arch(), {}};
  m.kernel = runtime::load_kernel(request, device, m.generated.dynamic_smem);
}

ForwardPlan::~ForwardPlan() = default;
ForwardPlan::ForwardPlan(ForwardPlan&&) noexcept = default;
ForwardPlan& ForwardPlan::operator=(ForwardPlan&&) noexcept = default;

const AttentionProblem& ForwardPlan::problem() const {
  return impl_->problem;
}
const TileConfig& ForwardPlan::config() const {
  return impl_->config;
}
int ForwardPlan::registers_per_thread() const {
  return impl_->kernel->registers;
}
int ForwardPlan::shared_memory_bytes() const {
  return impl_->kernel->static_smem + impl_->kernel->dynamic_smem;
}
int ForwardPlan::local_memory_bytes() const {
  return impl_->kernel->local_bytes;
}

namespace {

struct Extent { // a view's dimensions, for alignment and overlap checks
  const char* name;
  TensorView view;
  std::array<int64_t, 3> sizes; // batch, seq, heads; the last dim is `dim`
  int64_t dim;

  uintptr_t begin() const { return reinterpret_cast<uintptr_t>(view.data); }
  uintptr_t end() const { // one past the last byte touched
    int64_t last = dim;
    const std::array<int64_t, 3> strides{view.batch_stride, view.seq_stride, view.head_stride};
    for (int i = 0; i < 3; ++i)
      last += (sizes[i] - 1) * strides[i];
    return begin() + uintptr_t(last) * 2;
  }
};

void check_view(const Extent& e) {
  if (e.view.data == nullptr)
    throw Error(ErrorKind::invalid_argument, fmt::format("{} is null", e.name));
  if (e.begin() % 16 != 0)
    throw Error(ErrorKind::invalid_argument,
                fmt::format("{} ({}) is not 16-byte aligned", e.name, e.view.data));
  for (auto [stride, what] :
       {std::pair{e.view.batch_stride, "batch"}, std::pair{e.view.seq_stride, "seq"},
        std::pair{e.view.head_stride, "head"}})
    if (stride < 0 || stride % 8 != 0)
      throw Error(ErrorKind::invalid_argument,
                  fmt::format("{} {} stride {} must be a non-negative multiple of 8 elements "
                              "(16 bytes)",
                              e.name, what, stride));
}

// No two elements of the output may share an address: walk the dims from the smallest stride up,
// each must step past everything the smaller ones cover.
void check_no_self_overlap(const Extent& e) {
  std::array<std::pair<int64_t, int64_t>, 3> dims{std::pair{e.view.batch_stride, e.sizes[0]},
                                                  std::pair{e.view.seq_stride, e.sizes[1]},
                                                  std::pair{e.view.head_stride, e.sizes[2]}};
  std::sort(dims.begin(), dims.end());
  int64_t span = e.dim;
  for (auto [stride, size] : dims) {
    if (size <= 1) continue;
    if (stride < span)
      throw Error(ErrorKind::invalid_argument,
                  fmt::format("{} strides (batch {}, seq {}, head {}) make output elements overlap",
                              e.name, e.view.batch_stride, e.view.seq_stride, e.view.head_stride));
    span = stride * (size - 1) + span;
  }
}

bool overlaps(uintptr_t a0, uintptr_t a1, uintptr_t b0, uintptr_t b1) {
  return a0 < b1 && b0 < a1;
}

} // namespace

void ForwardPlan::run(const ForwardArgs& args, Stream stream) const {
  const Impl& m = *impl_;
  const auto& s = m.problem.spec;
  const auto& sh = m.problem.shape;
  const Extent q{"q", args.q, {sh.batch, sh.seqlen_q, s.num_heads}, s.head_dim_qk};
  const Extent k{"k", args.k, {sh.batch, sh.seqlen_k, s.num_kv_heads}, s.head_dim_qk};
  const Extent v{"v", args.v, {sh.batch, sh.seqlen_k, s.num_kv_heads}, s.head_dim_v};
  const Extent o{"o", args.o, {sh.batch, sh.seqlen_q, s.num_heads}, s.head_dim_v};
  for (const Extent* e : {&q, &k, &v, &o})
    check_view(*e);
  if (args.lse == nullptr) throw Error(ErrorKind::invalid_argument, "lse is null");
  const uintptr_t lse0 = reinterpret_cast<uintptr_t>(args.lse);
  if (lse0 % 4 != 0)
    throw Error(ErrorKind::invalid_argument,
                fmt::format("lse ({}) is not 4-byte aligned", (void*)args.lse));
  const uintptr_t lse1 = lse0 + uintptr_t(sh.batch * s.num_heads * sh.seqlen_q) * 4;
  check_no_self_overlap(o);
  if (overlaps(o.begin(), o.end(), lse0, lse1))
    throw Error(ErrorKind::invalid_argument, "o and lse overlap");
  for (const Extent* in : {&q, &k, &v}) {
    if (in == &k || in == &v) {
      if (sh.seqlen_k == 0) continue; // never read
    }
    if (overlaps(o.begin(), o.end(), in->begin(), in->end()))
      throw Error(ErrorKind::invalid_argument, fmt::format("o overlaps the input {}", in->name));
    if (overlaps(lse0, lse1, in->begin(), in->end()))
      throw Error(ErrorKind::invalid_argument, fmt::format("lse overlaps the input {}", in->name));
  }

  FwdParams p{};
  p.q = args.q.data, p.k = args.k.data, p.v = args.v.data;
  p.o = const_cast<void*>(args.o.data);
  p.lse = args.lse;
  p.q_batch_stride = args.q.batch_stride, p.q_seq_stride = args.q.seq_stride,
  p.q_head_stride = args.q.head_stride;
  p.k_batch_stride = args.k.batch_stride, p.k_seq_stride = args.k.seq_stride,
  p.k_head_stride = args.k.head_stride;
  p.v_batch_stride = args.v.batch_stride, p.v_seq_stride = args.v.seq_stride,
  p.v_head_stride = args.v.head_stride;
  p.o_batch_stride = args.o.batch_stride, p.o_seq_stride = args.o.seq_stride,
  p.o_head_stride = args.o.head_stride;
  p.batch = int(sh.batch);
  p.num_heads = s.num_heads;
  p.heads_per_kv = s.num_heads / s.num_kv_heads;
  p.seqlen_q = int(sh.seqlen_q);
  p.seqlen_k = int(sh.seqlen_k);
  p.num_m_blocks = m.num_m_blocks;
  p.softmax_scale = effective_softmax_scale(m.problem);
  p.softmax_scale_log2 = p.softmax_scale * 1.4426950408889634f;

  runtime::use_device(m.device);
  void* kernel_args[] = {&p};
  const unsigned grid = unsigned(int64_t(m.num_m_blocks) * sh.batch * s.num_heads);
  ATTNJIT_CU(cuLaunchKernel(m.kernel->function, grid, 1, 1, m.generated.threads, 1, 1,
                            m.generated.dynamic_smem, reinterpret_cast<CUstream>(stream),
                            kernel_args, nullptr));
}

} // namespace attnjit

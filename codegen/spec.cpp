#include <attnjit/error.h>
#include <attnjit/spec.h>

#include <fmt/format.h>

#include <cmath>
#include <limits>

namespace attnjit {

const char* to_string(Pass v) {
  return v == Pass::forward ? "fwd" : "bwd";
}
const char* to_string(DType v) {
  return v == DType::bf16 ? "bf16" : "fp16";
}
const char* to_string(Mask v) {
  return v == Mask::none ? "none" : "causal";
}
const char* to_string(Layout v) {
  switch (v) {
  case Layout::separate:
    return "separate";
  case Layout::packed_qkv:
    return "packed_qkv";
  case Layout::v_in_k:
    return "v_in_k";
  }
  return "?";
}

const char* attention_type(const KernelSpec& s) {
  if (s.layout == Layout::packed_qkv) return "mhsa";
  if (s.head_dim_qk != s.head_dim_v) return "mla";
  if (s.num_kv_heads == s.num_heads) return "mha";
  if (s.num_kv_heads == 1) return "mqa";
  return "gqa";
}

float effective_softmax_scale(const AttentionProblem& p) {
  return p.softmax_scale != 0.0f ? p.softmax_scale
                                 : 1.0f / std::sqrt(static_cast<float>(p.spec.head_dim_qk));
}

double flop_count(const AttentionProblem& p) {
  const auto& s = p.spec;
  // Q K^T costs 2*Dqk and P V 2*Dv multiply-adds per (query, key) pair.
  double flops = 2.0 * p.shape.batch * s.num_heads * double(p.shape.seqlen_q) *
                 double(p.shape.seqlen_k) * (s.head_dim_qk + s.head_dim_v);
  if (s.mask == Mask::causal) flops /= 2;
  if (s.pass == Pass::backward) flops *= 2.5;
  return flops;
}

std::string to_string(const KernelSpec& s) {
  std::string dims = s.head_dim_qk == s.head_dim_v
                         ? fmt::format("d{}", s.head_dim_qk)
                         : fmt::format("d{}/{}", s.head_dim_qk, s.head_dim_v);
  return fmt::format("{} {} {} {} heads={}/{} layout={} mask={}{}", to_string(s.pass),
                     attention_type(s), to_string(s.dtype), dims, s.num_heads, s.num_kv_heads,
                     to_string(s.layout), to_string(s.mask),
                     s.deterministic ? " deterministic" : "");
}

std::string to_string(const AttentionShape& s) {
  return fmt::format("B={} Sq={} Sk={}", s.batch, s.seqlen_q, s.seqlen_k);
}

std::string to_string(const TileConfig& c) {
  return fmt::format("block_m={} block_n={} warps={} stages={} q_in_regs={}{}{}", c.block_m,
                     c.block_n, c.num_warps, c.num_stages, c.q_in_registers ? 1 : 0,
                     c.wgmma ? " wgmma" : "", c.warp_specialized ? " ws" : "");
}

std::string kernel_slug(const KernelSpec& s, const TileConfig& c) {
  std::string dims = s.head_dim_qk == s.head_dim_v
                         ? fmt::format("d{}", s.head_dim_qk)
                         : fmt::format("d{}x{}", s.head_dim_qk, s.head_dim_v);
  if (s.layout == Layout::v_in_k) dims += "_vink";
  return fmt::format("{}_{}_{}_{}{}{}_m{}n{}w{}s{}{}{}{}", to_string(s.pass), attention_type(s),
                     dims, to_string(s.dtype), s.mask == Mask::causal ? "_causal" : "",
                     s.deterministic ? "_det" : "", c.block_m, c.block_n, c.num_warps, c.num_stages,
                     c.q_in_registers ? "q" : "", c.wgmma ? "_wgmma" : "",
                     c.warp_specialized ? "_ws" : "");
}

static void require(bool ok, ErrorKind kind, const std::string& message) {
  if (!ok) throw Error(kind, message);
}

void validate(const KernelSpec& s) {
  const auto ctx = [&] { return fmt::format(" (spec: {})", to_string(s)); };
  require(s.num_heads > 0, ErrorKind::invalid_argument,
          fmt::format("num_heads must be positive, got {}", s.num_heads) + ctx());
  require(s.num_kv_heads > 0, ErrorKind::invalid_argument,
          fmt::format("num_kv_heads must be positive, got {}", s.num_kv_heads) + ctx());
  require(s.num_heads % s.num_kv_heads == 0, ErrorKind::invalid_argument,
          fmt::format("num_heads ({}) must be a multiple of num_kv_heads ({})", s.num_heads,
                      s.num_kv_heads) +
              ctx());
  require(s.head_dim_qk > 0 && s.head_dim_v > 0, ErrorKind::invalid_argument,
          fmt::format("head dims must be positive, got {}/{}", s.head_dim_qk, s.head_dim_v) +
              ctx());
  require(s.layout != Layout::packed_qkv ||
              (s.num_heads == s.num_kv_heads && s.head_dim_qk == s.head_dim_v),
          ErrorKind::invalid_argument,
          "packed QKV needs num_kv_heads == num_heads and equal head dims" + ctx());
  require(!s.deterministic || s.pass == Pass::backward, ErrorKind::invalid_argument,
          "deterministic applies to the backward only; the forward is always bitwise stable" +
              ctx());
  // Absorbed MLA's pair (512 latent + 64 rope columns for Q and K, the latent 512 for V) is the
  // one wide-Dv shape so far (the forward's flash_fwd_wide_kernel).
  const bool absorbed_mla = s.head_dim_qk == 576 && s.head_dim_v == 512;
  if (!absorbed_mla)
    for (int d : {s.head_dim_qk, s.head_dim_v})
      require(d == 32 || d == 64 || d == 96 || d == 128 || d == 192 || d == 256,
              ErrorKind::unsupported,
              fmt::format("head dim {} is not supported (supported: 32, 64, 96, 128, 192, 256, "
                          "and 576/512 for absorbed MLA)",
                          d) +
                  ctx());
  require(s.layout != Layout::v_in_k || absorbed_mla, ErrorKind::unsupported,
          fmt::format("layout v_in_k (V read from K's first head_dim_v columns) is implemented "
                      "for head dims 576/512 only, got {}/{}",
                      s.head_dim_qk, s.head_dim_v) +
              ctx());
  // The backward keeps dK and dV of 16 keys per warp in registers: (Dqk + Dv) / 2 floats each
  // thread, which must leave room for S and dP.
  require(s.pass == Pass::forward || s.head_dim_qk + s.head_dim_v <= 320, ErrorKind::unsupported,
          fmt::format("the backward supports head_dim_qk + head_dim_v up to 320 (d128, or MLA's "
                      "192/128), got {}/{}",
                      s.head_dim_qk, s.head_dim_v) +
              ctx());
}

void validate(const AttentionProblem& p) {
  validate(p.spec);
  const auto& sh = p.shape;
  const auto ctx = [&] { return fmt::format(" (shape: {})", to_string(sh)); };
  require(sh.batch > 0, ErrorKind::invalid_argument,
          fmt::format("batch must be positive, got {}", sh.batch) + ctx());
  require(sh.seqlen_q > 0, ErrorKind::invalid_argument,
          fmt::format("seqlen_q must be positive, got {}", sh.seqlen_q) + ctx());
  require(sh.seqlen_k >= 0, ErrorKind::invalid_argument,
          fmt::format("seqlen_k must not be negative, got {}", sh.seqlen_k) + ctx());
  constexpr int64_t kIntMax = std::numeric_limits<int32_t>::max();
  require(sh.seqlen_q <= kIntMax && sh.seqlen_k <= kIntMax && sh.batch <= kIntMax,
          ErrorKind::invalid_argument, "batch and sequence lengths must fit in 32 bits" + ctx());
  require(std::isfinite(p.softmax_scale) && p.softmax_scale >= 0, ErrorKind::invalid_argument,
          fmt::format("softmax_scale must be positive and finite (0 selects 1/sqrt(d)), got {}",
                      p.softmax_scale));
}

} // namespace attnjit

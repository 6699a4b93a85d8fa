#include "codegen/tile_rules.h"

#include <attnjit/error.h>

#include <fmt/format.h>

#include <algorithm>
#include <optional>

namespace attnjit::codegen {

ArchLimits arch_limits(const std::string& arch) {
  // Opt-in shared memory per block, from the CUDA programming guide's per-CC table.
  if (arch == "sm_80") return {arch, 166912, 1024};
  if (arch == "sm_86" || arch == "sm_87" || arch == "sm_89") return {arch, 101376, 1024};
  if (arch == "sm_90" || arch == "sm_90a") return {arch, 232448, 1024};
  if (arch == "sm_100" || arch == "sm_100a") return {arch, 232448, 1024};
  throw Error(ErrorKind::unsupported,
              fmt::format("unknown architecture '{}' (supported: sm_80, sm_86, sm_87, sm_89, "
                          "sm_90, sm_90a, sm_100, sm_100a)",
                          arch));
}

static int padded_cols(int d) {
  return (d + 63) / 64 * 64;
}

bool uses_wide_forward(const KernelSpec& spec) {
  return spec.pass == Pass::forward && spec.head_dim_v > 256;
}

// Warps that share one 16-row tile of S in the wide-Dv forward (FwdWideTraits::kSplit).
static int wide_split(const TileConfig& c) {
  return c.num_warps / std::max(1, c.block_m / 16);
}

// The wgmma forward's shared memory: 1 KiB to align the base for the swizzle atoms; Q (then O,
// whose rows are padded to 64 columns either way), rounded to 1 KiB; num_stages slots each of K
// and V. Warp-specialized (FwdWsTraits): O in its own 1 KiB-rounded space where that fits
// 227 KiB, then the mbarriers (Q full and empty; K and V full and empty per slot), in 128-byte
// units.
namespace {
struct WgmmaForwardSmem {
  int tiles, own_o, barriers;
  WgmmaForwardSmem(const KernelSpec& spec, const TileConfig& c) {
    const int qk = padded_cols(spec.head_dim_qk) * 2, v = padded_cols(spec.head_dim_v) * 2;
    const int qo = (c.block_m * std::max(qk, v) + 1023) / 1024 * 1024;
    tiles = 1024 + qo + c.num_stages * c.block_n * (qk + v);
    own_o = (c.block_m * v + 1023) / 1024 * 1024;
    barriers = ((2 + 4 * c.num_stages) * 8 + 127) / 128 * 128;
  }
};
} // namespace

bool forward_o_has_own_smem(const KernelSpec& spec, const TileConfig& c) {
  if (!c.wgmma || !c.warp_specialized || uses_wide_forward(spec)) return false;
  const WgmmaForwardSmem smem(spec, c);
  return forward_walks_tiles(spec, c) && smem.tiles + smem.own_o + smem.barriers <= 232448;
}

int forward_smem_bytes(const KernelSpec& spec, const TileConfig& c) {
  const int qk = padded_cols(spec.head_dim_qk) * 2, v = padded_cols(spec.head_dim_v) * 2;
  if (uses_wide_forward(spec)) {
    // Q (then O); num_stages of K, and of V unless V is read from K's tile; P (block_m,
    // block_n); fp32 row maxima and sums per S warp and a rescale factor per row.
    const int v_stage = spec.layout == Layout::v_in_k ? 0 : v;
    return c.block_m * std::max(qk, v) + c.num_stages * c.block_n * (qk + v_stage) +
           c.block_m * padded_cols(c.block_n) * 2 + (2 * wide_split(c) + 1) * c.block_m * 4;
  }
  if (c.wgmma) {
    const WgmmaForwardSmem smem(spec, c);
    if (!c.warp_specialized) return smem.tiles;
    return smem.tiles + (forward_o_has_own_smem(spec, c) ? smem.own_o : 0) + smem.barriers;
  }
  // Q, whose space O reuses on the way out; then num_stages of K and V.
  return c.block_m * std::max(qk, v) + c.num_stages * c.block_n * (qk + v);
}

int computing_warps(const TileConfig& c) {
  return c.warp_specialized ? c.num_warps - 4 : c.num_warps;
}

int backward_dq_columns(const KernelSpec& spec, const TileConfig& c) {
  const int warpgroups = std::max(1, computing_warps(c) / 4);
  const int slice = spec.head_dim_qk / warpgroups;
  return slice % 64 == 0 ? slice : spec.head_dim_qk;
}

int backward_smem_bytes(const KernelSpec& spec, const TileConfig& c) {
  const int qk = padded_cols(spec.head_dim_qk) * 2, v = padded_cols(spec.head_dim_v) * 2;
  // 1 KiB to align the base; K and V; Q and dO two stages; dS^T; LSE and D two stages.
  // Warp-specialized: dS^T twice (by step parity), each computing warpgroup's dQ (block_m,
  // backward_dq_columns) in fp32 on its way to the reduce-add unless deterministic, then the
  // mbarriers in a 128-byte unit.
  if (c.wgmma && c.warp_specialized)
    return 1024 + c.block_n * (qk + v) + c.num_stages * c.block_m * (qk + v) +
           2 * c.block_n * c.block_m * 2 +
           (spec.deterministic
                ? 0
                : computing_warps(c) / 4 * c.block_m * backward_dq_columns(spec, c) * 4) +
           c.num_stages * 2 * c.block_m * 4 + 128;
  if (c.wgmma)
    return 1024 + c.block_n * (qk + v) + 2 * c.block_m * (qk + v) + c.block_n * c.block_m * 2 +
           2 * 2 * c.block_m * 4;
  // K and V once; Q and dO two stages; dS^T (block_n, block_m); LSE and D, two stages.
  return c.block_n * (qk + v) + 2 * c.block_m * (qk + v) + c.block_n * padded_cols(c.block_m) * 2 +
         2 * 2 * c.block_m * 4;
}

int backward_dq_smem_bytes(const KernelSpec& spec) {
  const int qk = padded_cols(spec.head_dim_qk) * 2, v = padded_cols(spec.head_dim_v) * 2;
  return 64 * (qk + v) + 2 * 64 * (qk + v); // Q and dO; two stages of K and V
}

// fp32 accumulators a thread keeps live across the main loop. Over ~200 the kernel spills on
// sm_80/sm_90 (255 registers per thread, the rest for addresses and indices).
static int accumulator_registers(const KernelSpec& spec, const TileConfig& c) {
  if (uses_wide_forward(spec)) // a column slice of O over all rows, and a key slice of S
    return c.block_m * (spec.head_dim_v + c.block_n) / (32 * c.num_warps);
  if (c.wgmma && spec.pass == Pass::forward) // O and S, 64 rows per warpgroup; P (packed)
    return spec.head_dim_v / 2 + c.block_n / 2 + c.block_n / 4;
  if (c.wgmma) // dK and dV of 64 keys per warpgroup; S^T and dP^T (64 queries), then P, dS, dQ
    return (spec.head_dim_qk + spec.head_dim_v) / 2 + 64;
  if (spec.pass == Pass::forward) { // O, S, and Q when resident
    const int m_tiles = c.block_m / (16 * c.num_warps);
    int regs = m_tiles * (spec.head_dim_v / 8) * 4 + m_tiles * (c.block_n / 8) * 4;
    if (c.q_in_registers) regs += m_tiles * (spec.head_dim_qk / 16) * 4;
    return regs;
  }
  // dK, dV, and S^T / dP^T for the warp's keys
  const int key_tiles = c.block_n / (16 * c.num_warps);
  return key_tiles * ((spec.head_dim_qk + spec.head_dim_v) / 8 * 4 + 2 * (c.block_m / 8) * 4);
}

bool forward_walks_tiles(const KernelSpec& spec, const TileConfig& c) {
  return c.warp_specialized && spec.pass == Pass::forward && spec.mask == Mask::none &&
         !uses_wide_forward(spec) && accumulator_registers(spec, c) <= 160;
}

// Registers the loading warpgroup of a warp-specialized kernel keeps (FwdWsTraits, BwdWsTraits:
// the fewest its loop runs in without spilling).
static int ws_producer_registers(const KernelSpec& spec, const TileConfig& c) {
  if (spec.pass == Pass::backward) return 24;
  return forward_walks_tiles(spec, c) ? 40 : 24;
}

// Registers each computing thread of a warp-specialized kernel gets (FwdWsTraits, BwdWsTraits):
// two CTAs per SM when one computing warpgroup leaves room for another CTA's shared memory; the
// loading warpgroup keeps ws_producer_registers and the rest go to the computing ones, at most
// 240 each (setmaxnreg).
static int warp_specialized_registers(const KernelSpec& spec, const TileConfig& c) {
  const int compute_threads = 32 * (c.num_warps - 4);
  const int smem =
      spec.pass == Pass::forward ? forward_smem_bytes(spec, c) : backward_smem_bytes(spec, c);
  const int ctas_per_sm = compute_threads == 128 && 2 * (smem + 1024) <= 233472 ? 2 : 1;
  const int entry = std::min(255, 65536 / ctas_per_sm / (32 * c.num_warps) / 8 * 8);
  const int moved =
      std::min(240, (entry * 32 * c.num_warps - 128 * ws_producer_registers(spec, c)) /
                        compute_threads / 8 * 8);
  return std::max(entry, moved);
}

// BwdWgmmaTraits' and BwdWsTraits' static_asserts, in words.
static std::string why_not_wgmma_backward(const KernelSpec& spec, const TileConfig& c) {
  if (spec.head_dim_qk % 64 != 0 || spec.head_dim_v % 64 != 0 || spec.head_dim_qk > 256 ||
      spec.head_dim_v > 256)
    return fmt::format("the wgmma backward takes head dims that are multiples of 64 up to 256, "
                       "not {}/{}",
                       spec.head_dim_qk, spec.head_dim_v);
  if (c.block_m != 64)
    return fmt::format("block_m {}: the wgmma backward walks 64 queries at a time", c.block_m);
  if (c.num_warps % 4 != 0)
    return fmt::format("num_warps {} is not whole warpgroups of 4", c.num_warps);
  const int warps = computing_warps(c);
  if (c.warp_specialized && (c.num_warps < 8 || c.num_warps > 16))
    return fmt::format("num_warps {}: warp-specialized takes one loading and one to three "
                       "computing warpgroups (8 to 16 warps)",
                       c.num_warps);
  if (c.block_n != 16 * warps)
    return fmt::format("block_n {} != 16 * {} ({}): each computing warpgroup owns 64 keys",
                       c.block_n, c.warp_specialized ? "(num_warps - 4)" : "num_warps", 16 * warps);
  // Measured: with 128 dQ columns a computing warpgroup of the warp-specialized kernel has too
  // few registers left, and ptxas serializes its MMAs (C7520); d128 on one warpgroup ran at 230
  // TFLOP/s against 365 on two.
  if (c.warp_specialized && backward_dq_columns(spec, c) > 64)
    return fmt::format("warp-specialized: each computing warpgroup's dQ would be {} columns (more "
                       "than 64 leaves too few registers; use more warpgroups, into which "
                       "head_dim_qk {} splits in whole 64-column groups)",
                       backward_dq_columns(spec, c), spec.head_dim_qk);
  if (c.num_stages != 2 && !(c.warp_specialized && c.num_stages == 3))
    return fmt::format("num_stages {}: the backward's Q/dO ring has two stages (three when "
                       "warp-specialized)",
                       c.num_stages);
  if (c.q_in_registers) return "q_in_registers does not apply to the backward";
  return {};
}

// FwdWgmmaTraits' static_asserts and the instruction's limits, in words (the backward's above).
static std::string why_not_wgmma(const KernelSpec& spec, const TileConfig& c,
                                 const ArchLimits& limits) {
  if (limits.arch != "sm_90a")
    return fmt::format("wgmma needs sm_90a (Hopper), not {}", limits.arch);
  if (spec.pass == Pass::backward) return why_not_wgmma_backward(spec, c);
  if (uses_wide_forward(spec))
    return fmt::format("wgmma does not run head_dim_v {} (> 256: the wide-Dv forward)",
                       spec.head_dim_v);
  if (spec.head_dim_qk % 64 != 0 || spec.head_dim_v % 64 != 0)
    return fmt::format("wgmma tiles hold whole 64-column groups; head dims {}/{} are not "
                       "multiples of 64",
                       spec.head_dim_qk, spec.head_dim_v);
  if (c.num_warps % 4 != 0)
    return fmt::format("num_warps {} is not whole warpgroups of 4", c.num_warps);
  if (c.warp_specialized) {
    if (c.num_warps < 8 || c.num_warps > 16)
      return fmt::format("num_warps {}: warp-specialized takes one loading and one to three "
                         "computing warpgroups (8 to 16 warps)",
                         c.num_warps);
    if (c.block_m != 16 * (c.num_warps - 4))
      return fmt::format("block_m {} != 16 * (num_warps - 4) ({}): each computing warpgroup owns "
                         "64 rows",
                         c.block_m, 16 * (c.num_warps - 4));
  } else if (c.block_m != 16 * c.num_warps) {
    return fmt::format("block_m {} != 16 * num_warps ({}): each warpgroup owns 64 rows", c.block_m,
                       16 * c.num_warps);
  }
  if (c.block_n % 16 != 0 || c.block_n > 256)
    return fmt::format("block_n {} is not a multiple of 16 up to 256 (wgmma's N)", c.block_n);
  if (c.num_stages < 2)
    return fmt::format("num_stages {} < 2: the K/V ring needs two", c.num_stages);
  if (c.q_in_registers)
    return "q_in_registers does not apply to wgmma (Q is read from shared memory)";
  return {};
}

static std::string why_not_forward(const TileConfig& c) {
  if (c.block_m % (16 * c.num_warps) != 0)
    return fmt::format("block_m {} is not a multiple of 16 * num_warps ({})", c.block_m,
                       16 * c.num_warps);
  if (c.block_n % 16 != 0) return fmt::format("block_n {} is not a multiple of 16", c.block_n);
  if (c.num_stages < 2)
    return fmt::format("num_stages {} < 2: the K/V ring needs two", c.num_stages);
  return {};
}

// FwdWideTraits' static_asserts, in words.
static std::string why_not_wide_forward(const KernelSpec& spec, const TileConfig& c) {
  if (c.q_in_registers)
    return "q_in_registers does not apply to the wide-Dv forward (its S warps re-read Q from "
           "shared memory)";
  if (c.block_m % 16 != 0) return fmt::format("block_m {} is not a multiple of 16", c.block_m);
  if (c.block_n % 16 != 0) return fmt::format("block_n {} is not a multiple of 16", c.block_n);
  const int row_tiles = c.block_m / 16;
  if (c.num_warps % row_tiles != 0)
    return fmt::format("num_warps {} is not a multiple of block_m {}'s {} row tiles: each 16-row "
                       "tile of S gets the same number of warps",
                       c.num_warps, c.block_m, row_tiles);
  if (c.block_n % (16 * wide_split(c)) != 0)
    return fmt::format("block_n {} does not split into {} S warps' slices of whole 16-key tiles",
                       c.block_n, wide_split(c));
  if (spec.head_dim_v % (64 * c.num_warps) != 0)
    return fmt::format("head_dim_v {} does not split into {} warps' O slices of whole 64-column "
                       "groups",
                       spec.head_dim_v, c.num_warps);
  if (c.num_stages < 2)
    return fmt::format("num_stages {} < 2: the K/V ring needs two", c.num_stages);
  return {};
}

static std::string why_not_backward(const KernelSpec& spec, const TileConfig& c) {
  if (c.block_n % (16 * c.num_warps) != 0)
    return fmt::format("block_n {} is not a multiple of 16 * num_warps ({}): each warp owns whole "
                       "16-key tiles",
                       c.block_n, 16 * c.num_warps);
  if (c.block_m % 16 != 0) return fmt::format("block_m {} is not a multiple of 16", c.block_m);
  const int row_tiles = c.block_m / 16;
  if (c.num_warps % row_tiles != 0)
    return fmt::format("dQ: {} warps cannot split block_m {} into 16-row tiles evenly", c.num_warps,
                       c.block_m);
  if ((spec.head_dim_qk / (c.num_warps / row_tiles)) % 16 != 0)
    return fmt::format("dQ: {} warps per 16 rows leave a column range of head dim {} that is not "
                       "a multiple of 16",
                       c.num_warps / row_tiles, spec.head_dim_qk);
  if (c.num_stages != 2)
    return fmt::format("num_stages {}: the backward's Q/dO ring has two stages", c.num_stages);
  if (c.q_in_registers) return "q_in_registers does not apply to the backward";
  return {};
}

std::string why_not(const KernelSpec& spec, const TileConfig& c, const ArchLimits& limits) {
  if (c.num_warps <= 0 || c.block_m <= 0 || c.block_n <= 0 || c.num_stages <= 0)
    return fmt::format("tile sizes must be positive ({})", to_string(c));
  if (c.warp_specialized && !c.wgmma)
    return "warp_specialized needs wgmma (its loader feeds warpgroup MMAs)";
  if (c.num_warps * 32 > limits.max_threads_per_block)
    return fmt::format("{} warps exceed {} threads per block", c.num_warps,
                       limits.max_threads_per_block);
  if (spec.head_dim_qk % 16 != 0 || spec.head_dim_v % 16 != 0)
    return fmt::format("head dims {}/{} are not multiples of 16", spec.head_dim_qk,
                       spec.head_dim_v);
  const std::string shape = c.wgmma                      ? why_not_wgmma(spec, c, limits)
                            : uses_wide_forward(spec)    ? why_not_wide_forward(spec, c)
                            : spec.pass == Pass::forward ? why_not_forward(c)
                                                         : why_not_backward(spec, c);
  if (!shape.empty()) return shape;
  const int smem =
      spec.pass == Pass::forward ? forward_smem_bytes(spec, c) : backward_smem_bytes(spec, c);
  if (smem > limits.max_smem_per_block)
    return fmt::format("needs {} bytes of shared memory, {} allows {}", smem, limits.arch,
                       limits.max_smem_per_block);
  const int regs = accumulator_registers(spec, c);
  if (regs > 200)
    return fmt::format("{} accumulator registers per thread would spill (limit 200)", regs);
  // One CTA of num_warps warps gets at most 65536 / threads registers per thread (255 at most);
  // leave ~40 for addresses, indices and the softmax.
  const int per_thread = c.warp_specialized ? warp_specialized_registers(spec, c)
                                            : std::min(255, 65536 / (c.num_warps * 32));
  if (c.wgmma && regs + 40 > per_thread)
    return fmt::format("{} accumulator registers per thread leave too few of the {} that {} "
                       "warps get",
                       regs, per_thread, c.num_warps);
  return {};
}

std::vector<TileConfig> candidates(const KernelSpec& spec, const ArchLimits& limits) {
  std::vector<TileConfig> out;
  auto consider = [&](const TileConfig& c) {
    if (why_not(spec, c, limits).empty()) out.push_back(c);
  };
  // The wide-Dv forward: small block_m for decoding's few queries per head; 2 warps to fit
  // sm_86/sm_89's 99 KiB.
  if (uses_wide_forward(spec)) {
    for (int block_m : {16, 32, 64})
      for (int block_n : {32, 64, 128})
        for (int warps : {2, 4, 8})
          for (int stages : {2, 3})
            consider({block_m, block_n, warps, stages, false});
    return out;
  }
  if (spec.pass == Pass::backward) {
    if (limits.arch == "sm_90a")
      for (int warps : {4, 8, 12}) {
        consider({64, 16 * warps, warps, 2, false, true});
        for (int stages : {2, 3}) // plus a loading warpgroup
          consider({64, 16 * warps, warps + 4, stages, false, true, true});
      }
    for (int block_m : {32, 64, 128})
      for (int block_n : {64, 128})
        for (int warps : {4, 8})
          consider({block_m, block_n, warps, 2, false});
    return out;
  }
  if (limits.arch == "sm_90a") {
    for (int warps : {4, 8, 12})
      for (int block_n : {64, 80, 96, 112, 128, 160, 192})
        for (int stages : {2, 3})
          consider({16 * warps, block_n, warps, stages, false, true});
    // Warp-specialized: 1 to 3 computing warpgroups behind one loader.
    for (int warps : {8, 12, 16})
      for (int block_n : {64, 80, 96, 112, 128, 144, 160, 176, 192})
        for (int stages : {2, 3})
          consider({16 * (warps - 4), block_n, warps, stages, false, true, true});
  }
  for (int block_m : {64, 128})
    for (int block_n : {32, 64, 128})
      for (int warps : {4, 8})
        for (int stages : {2, 3})
          for (bool q_regs : {false, true})
            consider({block_m, block_n, warps, stages, q_regs});
  return out;
}

TileConfig default_config(const KernelSpec& spec, const ArchLimits& limits) {
  // FlashAttention-2's tables (sm80+, no dropout). Forward d256 takes 64 query rows because 128
  // overflow sm_80's shared memory; the backward keeps 16 keys per warp, and larger head dims
  // take fewer query rows to stay within the registers. The wide-Dv forward's 64 x 64 tiles with
  // V read from K fill sm_90's shared memory (225 KiB of 227); sm_80 falls back to block_n 32.
  const int d = std::max(spec.head_dim_qk, spec.head_dim_v);
  TileConfig c;
  // Hopper: the warp-specialized wgmma forward wherever it applies (docs/PERF.md, 2026-11-26):
  // a TMA loader warpgroup and two computing warpgroups (one at d64, where two such CTAs share
  // an SM) beat the all-loading wgmma kernel by 14-34% (d128: 628 vs 512 TFLOP/s; MLA 192/128:
  // 684 vs 512; d256: 690 vs 547; d64: 379 vs 331). Failing that, the all-loading kernel: up to
  // d128 one warpgroup per CTA with 96-key steps, beyond that two.
  const TileConfig hopper_ws = d <= 64    ? TileConfig{64, 128, 8, 2, false, true, true}
                               : d <= 192 ? TileConfig{128, 128, 12, 2, false, true, true}
                                          : TileConfig{128, 80, 12, 2, false, true, true};
  const TileConfig hopper = d <= 128   ? TileConfig{64, 96, 4, 2, false, true}
                            : d <= 192 ? TileConfig{128, 128, 8, 2, false, true}
                                       : TileConfig{128, 64, 8, 2, false, true};
  if (spec.pass == Pass::forward)
    for (const TileConfig& k : {hopper_ws, hopper})
      if (why_not(spec, k, limits).empty()) return k;
  // The wgmma backward: two computing warpgroups (128 keys) where dQ splits into their 64-column
  // slices, else one. Warp-specialized first (a TMA loader warpgroup, dQ reduce-added by TMA;
  // docs/PERF.md, session 5: d128 417 vs 351 TFLOP/s, causal 359 vs 310, d64 283 vs 209), with
  // a third Q/dO slot where it fits (session 6: d128 487 vs 470, causal 410 vs 385, d64 307 vs
  // 301), then the all-loading kernel (d128: 346 vs mma.sync's 245; d64: 213 vs 202). d64 stays
  // on one warpgroup: two, each summing dQ over its own keys, measured 1.00-1.02x without a mask
  // and 0.92x causal (session 8: B2 S2048 H12 311 vs 308, causal 225 vs 244).
  if (spec.pass == Pass::backward)
    for (const TileConfig& k :
         {TileConfig{64, 128, 12, 3, false, true, true},
          TileConfig{64, 128, 12, 2, false, true, true},
          TileConfig{64, 64, 8, 3, false, true, true}, TileConfig{64, 64, 8, 2, false, true, true},
          TileConfig{64, 128, 8, 2, false, true}, TileConfig{64, 64, 4, 2, false, true}})
      if (const bool dq_over_own_keys =
              backward_dq_columns(spec, k) * (computing_warps(k) / 4) != spec.head_dim_qk;
          !dq_over_own_keys && why_not(spec, k, limits).empty())
        return k;
  if (uses_wide_forward(spec))
    c = TileConfig{64, 64, 8, 2, false};
  else if (spec.pass == Pass::forward)
    c = d <= 64    ? TileConfig{128, 128, 4, 2, false}
        : d <= 128 ? TileConfig{128, 64, 4, 2, false}
        : d <= 192 ? TileConfig{128, 64, 8, 2, false}
                   : TileConfig{64, 64, 4, 2, false};
  else
    c = d <= 128 ? TileConfig{64, 128, 8, 2, false} : TileConfig{32, 128, 8, 2, false};
  // Smaller parts (sm_86: 99 KiB): the largest two-stage tile that fits.
  if (!why_not(spec, c, limits).empty()) {
    std::optional<TileConfig> best;
    for (const TileConfig& k : candidates(spec, limits))
      if (k.num_stages == 2 && !k.q_in_registers &&
          (!best || k.block_m * k.block_n > best->block_m * best->block_n))
        best = k;
    if (best) c = *best;
  }
  if (std::string why = why_not(spec, c, limits); !why.empty())
    throw Error(ErrorKind::unsupported, fmt::format("no default tile config for {} on {}: {}",
                                                    to_string(spec), limits.arch, why));
  return c;
}

} // namespace attnjit::codegen

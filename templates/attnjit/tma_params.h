// What the warp-specialized kernels receive besides their params: one TMA tensor map per input,
// and the forward's for O where it stores O by TMA.
// Plain types only (compiled by the host compiler, which fills it, and by NVRTC).
#pragma once

namespace attnjit {

// A CUtensorMap as the kernel sees it: 128 opaque bytes, 64-byte aligned, written on the host by
// cuTensorMapEncodeTiled. Dimension 0 runs along a row's head_dim elements; dimensions 1-3 are
// the sequence, head and batch indexes in ascending stride order (TMA wants each dimension's
// stride to cover the one before), and *_dim says which is which. An index that is always 0
// in the map (a single head, batch or row, or a broadcast one) has *_dim 0.
struct alignas(64) TmaTensor {
  unsigned long long map[16];
  int seq_dim, head_dim, batch_dim; // 1, 2 or 3; 0: not in the map
};

struct FwdTmaParams {
  TmaTensor q, k, v; // boxes of (64 elements, BLOCK_M or BLOCK_N rows)
  TmaTensor o;       // boxes of (64 elements, 64 rows): one warpgroup's rows; left empty where
                     // O has shared memory of its own and the warps store it (FwdWsTraits::kOwnO)
};

struct BwdTmaParams {
  TmaTensor q, dout; // boxes of (64 elements, 64 rows): one query step
  TmaTensor k, v;    // boxes of (64 elements, BLOCK_N rows): the CTA's keys
};

} // namespace attnjit

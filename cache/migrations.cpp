// The schema, one migration a step. Spec, shape and config are columns, not a blob, so that a
// database can be queried with the sqlite3 shell; enums are stored as the words to_string()
// prints, which survive a reordering of the C++ enums.
#include "cache/schema.h"

#include <iterator>

namespace attnjit::cache {
namespace {

constexpr Migration kMigrations[] = {
    {"devices and tuning records",
     R"sql(
CREATE TABLE devices (
  id INTEGER PRIMARY KEY,
  sku TEXT NOT NULL,
  cc_major INTEGER NOT NULL,
  cc_minor INTEGER NOT NULL,
  sm_count INTEGER NOT NULL,
  driver_version INTEGER NOT NULL,
  UNIQUE (sku, cc_major, cc_minor, sm_count, driver_version)
) STRICT;

-- sku repeats devices.sku because the key is the card, not the driver it was measured under:
-- one record per (sku, spec, shape), whichever driver tuned it last.
CREATE TABLE tuning_records (
  id INTEGER PRIMARY KEY,
  sku TEXT NOT NULL,
  device_id INTEGER NOT NULL REFERENCES devices (id),
  pass TEXT NOT NULL,
  dtype TEXT NOT NULL,
  head_dim_qk INTEGER NOT NULL,
  head_dim_v INTEGER NOT NULL,
  num_heads INTEGER NOT NULL,
  num_kv_heads INTEGER NOT NULL,
  layout TEXT NOT NULL,
  mask TEXT NOT NULL,
  batch INTEGER NOT NULL,
  seqlen_q INTEGER NOT NULL,
  seqlen_k INTEGER NOT NULL,
  bucket_seqlen_q INTEGER NOT NULL,
  bucket_seqlen_k INTEGER NOT NULL,
  bucket_batch_heads INTEGER NOT NULL,
  block_m INTEGER NOT NULL,
  block_n INTEGER NOT NULL,
  num_warps INTEGER NOT NULL,
  num_stages INTEGER NOT NULL,
  q_in_registers INTEGER NOT NULL CHECK (q_in_registers IN (0, 1)),
  median_ms REAL NOT NULL,
  cv REAL NOT NULL,
  runs INTEGER NOT NULL,
  tflops REAL NOT NULL,
  max_error REAL NOT NULL,
  candidates_tried INTEGER NOT NULL,
  candidates_pruned INTEGER NOT NULL,
  candidates_rejected INTEGER NOT NULL,
  noisy INTEGER NOT NULL CHECK (noisy IN (0, 1)),
  nvrtc_version TEXT NOT NULL,
  template_hash TEXT NOT NULL,
  attnjit_version TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  UNIQUE (sku, pass, dtype, head_dim_qk, head_dim_v, num_heads, num_kv_heads, layout, mask,
          batch, seqlen_q, seqlen_k)
) STRICT;

CREATE INDEX tuning_records_bucket ON tuning_records (
  sku, pass, dtype, head_dim_qk, head_dim_v, num_heads, num_kv_heads, layout, mask,
  bucket_seqlen_q, bucket_seqlen_k, bucket_batch_heads);
)sql"},

    {"compiled binaries",
     R"sql(
-- key: SHA-256 of the kernel's identity (source hash, name expressions, arch) and of everything
-- else that changes the cubin (NVRTC version, options, template hash). A row whose identity
-- matches but whose other fields do not is stale: found through binaries_kernel, never loaded.
CREATE TABLE binaries (
  key TEXT PRIMARY KEY,
  source_sha256 TEXT NOT NULL,
  name_expressions TEXT NOT NULL,
  arch TEXT NOT NULL,
  nvrtc_version TEXT NOT NULL,
  options TEXT NOT NULL,
  template_hash TEXT NOT NULL,
  lowered_names TEXT NOT NULL,
  cubin BLOB NOT NULL,
  cubin_sha256 TEXT NOT NULL,
  created_at INTEGER NOT NULL
) STRICT;

CREATE INDEX binaries_kernel ON binaries (source_sha256, name_expressions, arch);
)sql"},

    {"single-flight claims",
     R"sql(
-- One row per key being tuned: whoever inserts it tunes, the others wait for the record.
-- pid_start (the process's start time in clock ticks since boot) tells the claimant from a
-- later process that reused its pid.
CREATE TABLE claims (
  key TEXT PRIMARY KEY,
  pid INTEGER NOT NULL,
  host TEXT NOT NULL,
  pid_start INTEGER NOT NULL,
  started_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
) STRICT;
)sql"},

    {"wgmma config column",
     R"sql(
-- TileConfig::wgmma (Hopper warpgroup MMA). Rows written before it read 0, the only path that
-- existed then.
ALTER TABLE tuning_records ADD COLUMN wgmma INTEGER NOT NULL DEFAULT 0 CHECK (wgmma IN (0, 1));
)sql"},

    {"warp_specialized config column",
     R"sql(
-- TileConfig::warp_specialized (a load-only warpgroup beside the wgmma ones). Rows written before
-- it read 0, the only forward that existed then.
ALTER TABLE tuning_records ADD COLUMN warp_specialized INTEGER NOT NULL DEFAULT 0
  CHECK (warp_specialized IN (0, 1));
)sql"},
};

} // namespace

std::span<const Migration> migrations() {
  return kMigrations;
}

int schema_version() {
  return int(std::size(kMigrations));
}

} // namespace attnjit::cache

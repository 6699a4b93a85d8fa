// How a TuningRecord maps onto the tuning_records and devices columns, in one place: the SELECT
// list, the key's WHERE clause and the bind/read functions use the same order.
#pragma once

#include "cache/database.h"
#include "cache/sqlite.h"

#include <attnjit/cache.h>

// Macros, so that call sites build each whole statement as one string literal.
#define ATTNJIT_RECORD_SELECT                                                                      \
  "SELECT r.id, r.sku, d.cc_major, d.cc_minor, d.sm_count, d.driver_version, r.pass, r.dtype, "    \
  "r.head_dim_qk, r.head_dim_v, r.num_heads, r.num_kv_heads, r.layout, r.mask, r.batch, "          \
  "r.seqlen_q, r.seqlen_k, r.block_m, r.block_n, r.num_warps, r.num_stages, r.q_in_registers, "    \
  "r.wgmma, r.warp_specialized, r.median_ms, r.cv, r.runs, r.tflops, r.max_error, "                \
  "r.candidates_tried, r.candidates_pruned, r.candidates_rejected, r.noisy, r.nvrtc_version, "     \
  "r.template_hash, r.attnjit_version, r.created_at FROM tuning_records r JOIN devices d ON "      \
  "d.id = r.device_id "

// ?1 .. ?9, bound by bind_spec().
#define ATTNJIT_WHERE_SPEC                                                                         \
  "WHERE r.sku = ?1 AND r.pass = ?2 AND r.dtype = ?3 AND r.head_dim_qk = ?4 AND "                  \
  "r.head_dim_v = ?5 AND r.num_heads = ?6 AND r.num_kv_heads = ?7 AND r.layout = ?8 AND "          \
  "r.mask = ?9 "

// ?1 .. ?12, bound by bind_key().
#define ATTNJIT_WHERE_KEY                                                                          \
  ATTNJIT_WHERE_SPEC "AND r.batch = ?10 AND r.seqlen_q = ?11 AND r.seqlen_k = ?12 "

namespace attnjit::cache {

// The inverse of to_string() for the enums stored as words; false for an unknown word.
bool from_string(std::string_view word, Pass& out);
bool from_string(std::string_view word, DType& out);
bool from_string(std::string_view word, Layout& out);
bool from_string(std::string_view word, Mask& out);

void bind_spec(sql::Statement& statement, const std::string& sku, const KernelSpec& spec);
void bind_key(sql::Statement& statement, const RecordKey& key);

// Reads the row ATTNJIT_RECORD_SELECT produced. Throws Error(cache) naming the row for a value
// this build cannot read (an unknown enum word).
StoredRecord read_record(sql::Statement& statement);

// Binds ?1 .. ?36 of the tuning_records INSERT (records.cpp), device_id as ?2.
void bind_record(sql::Statement& statement, const TuningRecord& record, int64_t device_id);

} // namespace attnjit::cache

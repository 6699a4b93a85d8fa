// Database: opening, and the tuning-record queries.
#include "cache/database.h"
#include "cache/record_columns.h"

#include <ctime>

namespace attnjit::cache {

int64_t unix_now() {
  return int64_t(std::time(nullptr));
}

Database::Database(const std::string& path, OpenMode mode) : Database(open_database(path, mode)) {}

Database::Database(std::unique_ptr<sql::Connection> connection)
    : conn_(std::move(connection)), statements_(*conn_) {}

Database::~Database() = default;

void Database::put(const TuningRecord& input) {
  TuningRecord record = input;
  if (record.created_at == 0) record.created_at = unix_now();
  sql::WriteTransaction tx(*conn_);
  const DeviceFingerprint& d = record.device;
  const auto bind_device = [&](sql::Statement& st) {
    st.bind(1, d.sku);
    st.bind(2, d.cc_major);
    st.bind(3, d.cc_minor);
    st.bind(4, d.sm_count);
    st.bind(5, d.driver_version);
  };
  {
    sql::Use insert(
        statement("INSERT INTO devices (sku, cc_major, cc_minor, sm_count, "
                  "driver_version) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING"));
    bind_device(*insert);
    insert->run();
  }
  int64_t device_id = 0;
  {
    sql::Use select(statement("SELECT id FROM devices WHERE sku = ?1 AND cc_major = ?2 AND "
                              "cc_minor = ?3 AND sm_count = ?4 AND driver_version = ?5"));
    bind_device(*select);
    if (!select->step()) conn_->fail(SQLITE_ERROR, "devices row just inserted is missing");
    device_id = select->column_int(0);
  }
  {
    sql::Use insert(statement(
        "INSERT OR REPLACE INTO tuning_records (sku, device_id, pass, dtype, head_dim_qk, "
        "head_dim_v, num_heads, num_kv_heads, layout, mask, batch, seqlen_q, seqlen_k, "
        "bucket_seqlen_q, bucket_seqlen_k, bucket_batch_heads, block_m, block_n, num_warps, "
        "num_stages, q_in_registers, wgmma, warp_specialized, median_ms, cv, runs, tflops, "
        "max_error, candidates_tried, candidates_pruned, candidates_rejected, noisy, "
        "nvrtc_version, template_hash, attnjit_version, created_at) VALUES (?1, ?2, ?3, ?4, ?5, "
        "?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, "
        "?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34, ?35, ?36)"));
    bind_record(*insert, record, device_id);
    insert->run();
  }
  tx.commit();
}

std::optional<TuningRecord> Database::find(const RecordKey& key) {
  sql::Use select(statement(ATTNJIT_RECORD_SELECT ATTNJIT_WHERE_KEY));
  bind_key(*select, key);
  if (!select->step()) return std::nullopt;
  return read_record(*select).record;
}

std::vector<TuningRecord> Database::find_in_bucket(const RecordKey& key) {
  sql::Use select(statement(
      ATTNJIT_RECORD_SELECT ATTNJIT_WHERE_SPEC
      "AND r.bucket_seqlen_q = ?10 AND r.bucket_seqlen_k = ?11 AND r.bucket_batch_heads = ?12 "
      "ORDER BY abs(r.seqlen_q - ?13) + abs(r.seqlen_k - ?14), abs(r.batch - ?15), "
      "r.created_at DESC, r.id"));
  bind_spec(*select, key.sku, key.spec);
  const ShapeBucket bucket = bucket_of(key.spec, key.shape);
  select->bind(10, bucket.seqlen_q);
  select->bind(11, bucket.seqlen_k);
  select->bind(12, bucket.batch_heads);
  select->bind(13, key.shape.seqlen_q);
  select->bind(14, key.shape.seqlen_k);
  select->bind(15, key.shape.batch);
  std::vector<TuningRecord> out;
  while (select->step())
    out.push_back(read_record(*select).record);
  return out;
}

std::vector<AttentionShape> Database::tuned_shapes(const RecordKey& key, int limit) {
  sql::Use select(
      statement("SELECT r.batch, r.seqlen_q, r.seqlen_k FROM tuning_records r " ATTNJIT_WHERE_SPEC
                "ORDER BY abs(r.seqlen_q - ?10) + abs(r.seqlen_k - ?11), "
                "abs(r.batch - ?12), r.id LIMIT ?13"));
  bind_spec(*select, key.sku, key.spec);
  select->bind(10, key.shape.seqlen_q);
  select->bind(11, key.shape.seqlen_k);
  select->bind(12, key.shape.batch);
  select->bind(13, limit);
  std::vector<AttentionShape> out;
  while (select->step())
    out.push_back({select->column_int(0), select->column_int(1), select->column_int(2)});
  return out;
}

int64_t Database::count_records() {
  sql::Use select(statement("SELECT count(*) FROM tuning_records"));
  select->step();
  return select->column_int(0);
}

int64_t Database::count_records(const std::string& sku) {
  sql::Use select(statement("SELECT count(*) FROM tuning_records WHERE sku = ?1"));
  select->bind(1, sku);
  select->step();
  return select->column_int(0);
}

int64_t Database::count_records(const std::string& sku, const KernelSpec& spec) {
  sql::Use select(statement("SELECT count(*) FROM tuning_records r " ATTNJIT_WHERE_SPEC));
  bind_spec(*select, sku, spec);
  select->step();
  return select->column_int(0);
}

std::vector<StoredRecord> Database::records() {
  sql::Use select(statement(ATTNJIT_RECORD_SELECT
                            "ORDER BY r.sku, r.pass, r.dtype, r.head_dim_qk, r.head_dim_v, "
                            "r.num_heads, r.num_kv_heads, r.layout, r.mask, r.batch, r.seqlen_q, "
                            "r.seqlen_k"));
  std::vector<StoredRecord> out;
  while (select->step())
    out.push_back(read_record(*select));
  return out;
}

std::optional<StoredRecord> Database::record(int64_t id) {
  sql::Use select(statement(ATTNJIT_RECORD_SELECT "WHERE r.id = ?1"));
  select->bind(1, id);
  if (!select->step()) return std::nullopt;
  return read_record(*select);
}

bool Database::erase(const RecordKey& key) {
  sql::WriteTransaction tx(*conn_);
  sql::Use erase(statement("DELETE FROM tuning_records AS r " ATTNJIT_WHERE_KEY));
  bind_key(*erase, key);
  erase->run();
  const bool erased = sqlite3_changes(conn_->handle()) > 0;
  tx.commit();
  return erased;
}

} // namespace attnjit::cache

// `attnjit cache prune` and `attnjit cache coverage`.
#include "cache/maintenance.h"

#include <attnjit/error.h>

#include <fmt/format.h>

namespace attnjit::cache {

PruneReport prune(Database& db, const PruneFilter& filter, int64_t now) {
  if (!filter.older_than_seconds && filter.sku.empty() && !filter.stale_templates)
    throw Error(ErrorKind::invalid_argument,
                "prune needs at least one of --older-than, --sku, --stale-templates");
  // ?n IS NULL turns a criterion that was not given into "matches everything".
  const auto bind_filter = [&](sql::Statement& st) {
    if (filter.older_than_seconds)
      st.bind(1, now - *filter.older_than_seconds);
    else
      st.bind_null(1);
    if (filter.sku.empty())
      st.bind_null(2);
    else
      st.bind(2, filter.sku);
    st.bind(3, int(filter.stale_templates));
    st.bind(4, filter.template_hash);
  };
  const auto changes = [&] { return int64_t(sqlite3_changes(db.connection().handle())); };

  PruneReport report;
  sql::WriteTransaction tx(db.connection());
  {
    sql::Use erase(
        db.statement("DELETE FROM tuning_records WHERE (?1 IS NULL OR created_at < ?1) "
                     "AND (?2 IS NULL OR sku = ?2) AND (?3 = 0 OR template_hash != ?4)"));
    bind_filter(*erase);
    erase->run();
    report.records = changes();
  }
  {
    sql::Use erase(db.statement("DELETE FROM binaries WHERE ?2 IS NULL AND (?1 IS NULL OR "
                                "created_at < ?1) AND (?3 = 0 OR template_hash != ?4)"));
    bind_filter(*erase);
    erase->run();
    report.binaries = changes();
  }
  {
    sql::Use erase(
        db.statement("DELETE FROM devices WHERE id NOT IN (SELECT device_id FROM tuning_records)"));
    erase->run();
    report.devices = changes();
  }
  {
    sql::Use erase(db.statement("DELETE FROM claims WHERE expires_at <= ?1"));
    erase->bind(1, now);
    erase->run();
    report.claims = changes();
  }
  tx.commit();
  return report;
}

std::vector<CoverageEntry> coverage(Database& db, const std::string& sku) {
  std::vector<CoverageEntry> out;
  for (const StoredRecord& stored : db.records()) {
    const TuningRecord& r = stored.record;
    if (!sku.empty() && r.device.sku != sku) continue;
    // records() is ordered by SKU then spec, so one spec's shapes arrive together.
    if (out.empty() || out.back().sku != r.device.sku || !(out.back().spec == r.spec))
      out.push_back({r.device.sku, r.spec, {}});
    out.back().shapes.push_back(r.shape);
  }
  return out;
}

} // namespace attnjit::cache

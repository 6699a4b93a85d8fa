// One attnjit database file: tuning records, compiled binaries and single-flight claims.
// One Database per thread (its statements are prepared once and reused), opened after any fork()
// (SQLite connections must not cross one); processes share a file safely through SQLite's WAL
// locking. Every failure is Error(cache) naming the file.
#pragma once

#include "cache/schema.h"
#include "cache/sqlite.h"

#include <attnjit/cache.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace attnjit::cache {

struct StoredRecord {
  int64_t id = 0; // rowid, for `attnjit cache show ID`; changes when the record is replaced
  TuningRecord record;
};

// Everything that decides a cubin's bytes. The kernel's identity is (source, name expressions,
// arch); an entry with the same identity but another NVRTC version, options or template hash is
// stale.
struct BinaryKey {
  std::string source; // the generated kernel.cu
  std::vector<std::string> name_expressions;
  std::string arch;
  std::string nvrtc_version;
  std::vector<std::string> options; // exactly as passed to NVRTC
  std::string template_hash;
};

// The binaries.key column: SHA-256 over every field above (the source through its own hash).
std::string hash_of(const BinaryKey& key);
// The same from the columns a binaries row stores, so `cache verify` can recompute it.
std::string binary_key_hash(const std::string& source_sha256, const std::string& name_expressions,
                            const std::string& arch, const std::string& nvrtc_version,
                            const std::string& options, const std::string& template_hash);

struct CachedBinary {
  std::vector<char> cubin;
  std::vector<std::string> lowered_names; // one per name expression
};

struct BinaryLookup {
  std::optional<CachedBinary> binary;
  std::string stale; // non-empty when an entry for this kernel was found and skipped: why
};

// Who holds a claim. `start_ticks` (the process's start time, /proc/<pid>/stat) tells a live
// claimant from a process that reused its pid.
struct ClaimIdentity {
  int64_t pid = 0;
  std::string host;
  int64_t start_ticks = 0;

  static ClaimIdentity current(); // this process, recomputed after fork()
};

struct ClaimHolder {
  ClaimIdentity who;
  int64_t started_at = 0, expires_at = 0; // Unix seconds
};

enum class ClaimStatus {
  claimed,       // ours now: tune, put() the record, release
  taken_over,    // ours now; the previous claimant died or its claim expired (see note)
  held,          // another live process is tuning it: wait_for_record() or use the default
  already_tuned, // a record with the template hash exists: nothing to do
};
const char* to_string(ClaimStatus status);

struct ClaimResult {
  ClaimStatus status = ClaimStatus::held;
  ClaimHolder holder; // the claim as it stands afterwards (none for already_tuned)
  std::string note;
};

struct WaitResult {
  std::optional<TuningRecord> record;
  std::string why_not; // when there is no record: timed out, released without one, claimant died
};

class Database {
public:
  Database(const std::string& path, OpenMode mode);
  explicit Database(std::unique_ptr<sql::Connection> connection);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  const std::string& path() const { return conn_->path(); }
  sql::Connection& connection() { return *conn_; }
  // The connection's statement cache, for the maintenance functions (merge, prune, verify).
  sql::Statement& statement(const char* sql_text) { return statements_.get(sql_text); }

  // ---- tuning records --------------------------------------------------------------------
  // Inserts the record, replacing the key's previous one; created_at 0 becomes now.
  void put(const TuningRecord& record);
  std::optional<TuningRecord> find(const RecordKey& key);
  // Records of the key's SKU and spec whose shape lies in the key's bucket, nearest shape first.
  std::vector<TuningRecord> find_in_bucket(const RecordKey& key);
  // Tuned shapes of the key's SKU and spec, nearest to the key's shape first.
  std::vector<AttentionShape> tuned_shapes(const RecordKey& key, int limit);
  int64_t count_records();
  int64_t count_records(const std::string& sku);
  int64_t count_records(const std::string& sku, const KernelSpec& spec);
  // All records ordered by SKU, spec and shape.
  std::vector<StoredRecord> records();
  std::optional<StoredRecord> record(int64_t id);
  bool erase(const RecordKey& key);

  // ---- compiled binaries -------------------------------------------------------------------
  void put_binary(const BinaryKey& key, const CachedBinary& binary);
  // A stale or damaged entry is skipped and described, never returned.
  BinaryLookup find_binary(const BinaryKey& key);

  // ---- single flight (docs/CACHE.md) --------------------------------------------------------
  ClaimResult try_claim(const RecordKey& key, std::chrono::seconds ttl,
                        const std::string& template_hash,
                        const ClaimIdentity& self = ClaimIdentity::current());
  // Removes the key's claim if `self` holds it; false when it does not (taken over).
  bool release_claim(const RecordKey& key, const ClaimIdentity& self = ClaimIdentity::current());
  // Polls for the key's record until `timeout`; returns early when the claim is gone or dead.
  WaitResult wait_for_record(const RecordKey& key, const std::string& template_hash,
                             std::chrono::milliseconds timeout,
                             std::chrono::milliseconds poll = std::chrono::milliseconds(50));
  std::optional<ClaimHolder> claim_of(const RecordKey& key);

private:
  std::unique_ptr<sql::Connection> conn_;
  sql::StatementCache statements_;
};

// Whether the holder can still be tuning: on this host, its process is alive (same pid and start
// time); elsewhere, its claim has not expired. An expired claim is dead everywhere.
bool claim_is_live(const ClaimHolder& holder, int64_t now);

int64_t unix_now();

} // namespace attnjit::cache

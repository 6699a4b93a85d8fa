#include "cache/sqlite.h"

#include <attnjit/error.h>

#include <fmt/format.h>

#include <chrono>
#include <cstring>
#include <thread>

namespace attnjit::cache::sql {
namespace {

bool is_busy(int rc) {
  const int primary = rc & 0xff;
  return primary == SQLITE_BUSY || primary == SQLITE_LOCKED;
}

// What the user should take from an error code, beyond SQLite's own words.
const char* meaning(int rc) {
  switch (rc & 0xff) {
  case SQLITE_BUSY:
  case SQLITE_LOCKED:
    return "locked by another process for too long; the file is not corrupt, try again";
  case SQLITE_CORRUPT:
  case SQLITE_NOTADB:
    return "the file is corrupt or not a SQLite database";
  case SQLITE_READONLY:
    return "the file or its directory is read-only";
  case SQLITE_FULL:
    return "the disk is full";
  case SQLITE_CANTOPEN:
    return "the file or its directory cannot be opened";
  case SQLITE_IOERR:
    return "an I/O error";
  default:
    return nullptr;
  }
}

// Waits out the BUSY cases SQLite's busy handler does not cover (WAL recovery, a reader racing a
// checkpoint), with a deadline, so a held lock ends as a "locked" error rather than a hang.
class BusyRetry {
public:
  bool again(int rc) {
    if (!is_busy(rc)) return false;
    const auto now = std::chrono::steady_clock::now();
    if (start_ == std::chrono::steady_clock::time_point{}) start_ = now;
    if (now - start_ > std::chrono::milliseconds(kBusyTimeoutMs)) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms_));
    pause_ms_ = std::min(pause_ms_ * 2, 50);
    return true;
  }

private:
  std::chrono::steady_clock::time_point start_{};
  int pause_ms_ = 1;
};

// The SQL of a failed statement, short enough for one line of an error message.
std::string abbreviate(std::string_view what) {
  std::string text;
  for (char c : what) {
    if (c == '\n' || c == ' ') {
      if (!text.empty() && text.back() != ' ') text += ' ';
    } else {
      text += c;
    }
  }
  return text.size() <= 100 ? text : text.substr(0, 97) + "...";
}

} // namespace

Connection::Connection(const std::string& path, const std::string& filename, int flags)
    : path_(path) {
  const int rc = sqlite3_open_v2(filename.c_str(), &db_, flags, nullptr);
  if (rc != SQLITE_OK) {
    // The handle exists even when opening failed, and carries the message.
    const std::string message = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close_v2(db_);
    db_ = nullptr;
    const char* why = meaning(rc);
    throw Error(ErrorKind::cache, fmt::format("cache database {}: cannot open: {}{}{}", path_,
                                              message, why ? "; " : "", why ? why : ""));
  }
  sqlite3_extended_result_codes(db_, 1);
  ATTNJIT_SQL(*this, sqlite3_busy_timeout(db_, kBusyTimeoutMs));
}

Connection::~Connection() {
  sqlite3_close_v2(db_); // deferred until every statement is finalized
}

void Connection::check(int rc, const char* what) const {
  if (rc != SQLITE_OK && rc != SQLITE_ROW && rc != SQLITE_DONE) fail(rc, what);
}

void Connection::fail(int rc, const char* what) const {
  const char* message = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
  const char* why = meaning(rc);
  throw Error(ErrorKind::cache,
              fmt::format("cache database {}: {} failed: {} (SQLite code {}{}{})", path_,
                          abbreviate(what), message, rc, why ? "; " : "", why ? why : ""));
}

void Connection::exec(const char* sql_text) {
  BusyRetry retry;
  for (;;) {
    // Only a statement that starts or ends a transaction may be repeated after BUSY; one inside
    // a transaction would need the whole transaction redone.
    const bool may_retry = !in_transaction() || std::strcmp(sql_text, "COMMIT") == 0;
    const int rc = sqlite3_exec(db_, sql_text, nullptr, nullptr, nullptr);
    if (rc == SQLITE_OK) return;
    if (may_retry && retry.again(rc)) continue;
    fail(rc, sql_text);
  }
}

int64_t Connection::query_int(const char* sql_text) {
  Statement statement(*this, sql_text);
  if (!statement.step()) fail(SQLITE_ERROR, sql_text);
  return statement.column_int(0);
}

bool Connection::in_transaction() const {
  return sqlite3_get_autocommit(db_) == 0;
}

Statement::Statement(Connection& conn, const char* sql_text) : conn_(conn), sql_(sql_text) {
  ATTNJIT_SQL(conn_, sqlite3_prepare_v3(conn_.handle(), sql_text, -1, SQLITE_PREPARE_PERSISTENT,
                                        &stmt_, nullptr));
}

Statement::~Statement() {
  sqlite3_finalize(stmt_);
}

void Statement::bind(int index, int64_t value) {
  ATTNJIT_SQL(conn_, sqlite3_bind_int64(stmt_, index, value));
}
void Statement::bind(int index, double value) {
  ATTNJIT_SQL(conn_, sqlite3_bind_double(stmt_, index, value));
}
void Statement::bind(int index, std::string_view text) {
  ATTNJIT_SQL(conn_, sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_TRANSIENT,
                                         SQLITE_UTF8));
}
void Statement::bind_blob(int index, std::span<const char> bytes) {
  // A zero-length blob with a null pointer would bind NULL; "" keeps it a blob.
  const void* data = bytes.empty() ? "" : bytes.data();
  ATTNJIT_SQL(conn_, sqlite3_bind_blob64(stmt_, index, data, bytes.size(), SQLITE_TRANSIENT));
}

void Statement::bind_null(int index) {
  ATTNJIT_SQL(conn_, sqlite3_bind_null(stmt_, index));
}

bool Statement::step() {
  BusyRetry retry;
  for (;;) {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    // Before the first row and outside a transaction the statement can simply run again.
    if (!conn_.in_transaction() && retry.again(rc)) {
      sqlite3_reset(stmt_);
      continue;
    }
    conn_.fail(rc, sql_.c_str());
  }
}

void Statement::run() {
  while (step()) {
  }
}

int64_t Statement::column_int(int column) const {
  return sqlite3_column_int64(stmt_, column);
}
double Statement::column_double(int column) const {
  return sqlite3_column_double(stmt_, column);
}
std::string Statement::column_text(int column) const {
  const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
  return text ? std::string(text, size_t(sqlite3_column_bytes(stmt_, column))) : std::string();
}
std::vector<char> Statement::column_blob(int column) const {
  const auto* data = static_cast<const char*>(sqlite3_column_blob(stmt_, column));
  return data ? std::vector<char>(data, data + sqlite3_column_bytes(stmt_, column))
              : std::vector<char>();
}
bool Statement::column_is_null(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

void Statement::reset() {
  sqlite3_reset(stmt_); // returns the last step's error, already reported by step()
  sqlite3_clear_bindings(stmt_);
}

Statement& StatementCache::get(const char* sql_text) {
  std::unique_ptr<Statement>& slot = statements_[sql_text];
  if (!slot) slot = std::make_unique<Statement>(conn_, sql_text);
  return *slot;
}

WriteTransaction::WriteTransaction(Connection& conn) : conn_(conn) {
  if (conn_.in_transaction()) return;
  conn_.exec("BEGIN IMMEDIATE");
  owner_ = true;
}

WriteTransaction::~WriteTransaction() {
  if (owner_ && !done_ && conn_.in_transaction())
    sqlite3_exec(conn_.handle(), "ROLLBACK", nullptr, nullptr, nullptr); // may not throw here
}

void WriteTransaction::commit() {
  if (owner_) conn_.exec("COMMIT");
  done_ = true;
}

std::string file_uri(const std::string& path, const std::string& query) {
  std::string uri = "file:";
  for (unsigned char c : path) {
    if (std::isalnum(c) || std::strchr("/-_.~", c))
      uri += char(c);
    else
      uri += fmt::format("%{:02X}", c);
  }
  return query.empty() ? uri : uri + "?" + query;
}

} // namespace attnjit::cache::sql

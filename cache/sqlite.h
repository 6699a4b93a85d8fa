// The thin layer every SQLite call goes through: a connection that knows its file, statements
// prepared once per connection, and write transactions that start with BEGIN IMMEDIATE. Each
// call is checked once, here, and a failure becomes Error(cache) with the expression, SQLite's
// message and the file path.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace attnjit::cache::sql {

class Connection {
public:
  // `filename` is what sqlite3_open_v2 gets (a URI when flags has SQLITE_OPEN_URI); `path` is
  // the file as the user named it, for messages.
  Connection(const std::string& path, const std::string& filename, int flags);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  sqlite3* handle() const { return db_; }
  const std::string& path() const { return path_; }

  // Throws unless rc is SQLITE_OK, SQLITE_ROW or SQLITE_DONE.
  void check(int rc, const char* what) const;
  [[noreturn]] void fail(int rc, const char* what) const;

  // Runs SQL text that returns no rows (PRAGMAs, migrations, BEGIN/COMMIT), retrying BUSY.
  void exec(const char* sql_text);
  // The single integer a query such as "PRAGMA user_version" returns.
  int64_t query_int(const char* sql_text);

  // Inside BEGIN ... COMMIT (sqlite3_get_autocommit() == 0).
  bool in_transaction() const;

private:
  std::string path_;
  sqlite3* db_ = nullptr;
};

// ATTNJIT_SQL(conn, sqlite3_bind_int(...)) reports the expression on failure.
#define ATTNJIT_SQL(conn, call) (conn).check((call), #call)

class Statement {
public:
  Statement(Connection& conn, const char* sql_text);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Parameters are 1-based, as in the SQL text's ?1, ?2, ...
  void bind(int index, int64_t value);
  void bind(int index, int value) { bind(index, int64_t(value)); }
  void bind(int index, double value);
  void bind(int index, std::string_view text);
  void bind(int index, const char* text) { bind(index, std::string_view(text)); }
  void bind_blob(int index, std::span<const char> bytes);
  void bind_null(int index);

  // True when a row is ready. BUSY outside a transaction is retried until the busy deadline;
  // a lock that outlasts it is reported as "locked", never as corruption.
  bool step();
  // Steps a statement that returns no rows.
  void run();

  int64_t column_int(int column) const;
  double column_double(int column) const;
  std::string column_text(int column) const;
  std::vector<char> column_blob(int column) const;
  bool column_is_null(int column) const;

  // Ready for new bindings; releases the read snapshot a half-read SELECT holds.
  void reset();

private:
  Connection& conn_;
  sqlite3_stmt* stmt_ = nullptr;
  std::string sql_; // for messages
};

// Resets a cached statement when the scope ends, also on an exception, so no SELECT is left
// open holding a read snapshot.
class Use {
public:
  explicit Use(Statement& statement) : statement_(statement) { statement_.reset(); }
  ~Use() { statement_.reset(); }
  Statement* operator->() { return &statement_; }
  Statement& operator*() { return statement_; }

private:
  Statement& statement_;
};

// Statements prepared on first use and kept for the connection's life, keyed by their text.
class StatementCache {
public:
  explicit StatementCache(Connection& conn) : conn_(conn) {}
  Statement& get(const char* sql_text);

private:
  Connection& conn_;
  std::unordered_map<std::string, std::unique_ptr<Statement>> statements_;
};

// BEGIN IMMEDIATE: takes the write lock up front, so the busy handler waits for it; a deferred
// transaction that reads and then writes would get SQLITE_BUSY without waiting. Rolls back unless
// commit() ran. Inside an open transaction it joins that one and commits nothing itself.
class WriteTransaction {
public:
  explicit WriteTransaction(Connection& conn);
  ~WriteTransaction();
  WriteTransaction(const WriteTransaction&) = delete;
  WriteTransaction& operator=(const WriteTransaction&) = delete;
  void commit();

private:
  Connection& conn_;
  bool owner_ = false;
  bool done_ = false;
};

// How long a lock may keep us waiting before it is reported (the busy timeout, and the retry
// deadline for the BUSY cases SQLite's handler does not cover).
constexpr int kBusyTimeoutMs = 30000;

// "file:<path, %-escaped>?<query>" for sqlite3_open_v2 with SQLITE_OPEN_URI.
std::string file_uri(const std::string& path, const std::string& query);

} // namespace attnjit::cache::sql

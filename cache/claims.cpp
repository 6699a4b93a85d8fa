// Single flight for tune-on-miss across processes (docs/CACHE.md, "Single flight"): a claims row
// inserted under BEGIN IMMEDIATE, so exactly one process holds a key at a time.
#include "cache/database.h"

#include <fmt/format.h>

#include <cerrno>
#include <csignal>
#include <fstream>
#include <sstream>
#include <thread>
#include <unistd.h>

namespace attnjit::cache {
namespace {

std::string host_name() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0) return "unknown-host";
  return name;
}

struct ProcStat {
  char state = '?';        // 'Z': exited, waiting to be reaped
  int64_t start_ticks = 0; // clock ticks since boot
};

// Fields 3 and 22 of /proc/<pid>/stat; nullopt when unreadable (no /proc, or no such process).
// The command name (field 2) may hold spaces and parentheses, so parse after the last ')'.
std::optional<ProcStat> proc_stat(int64_t pid) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t paren = text.rfind(')');
  if (paren == std::string::npos || paren + 2 >= text.size()) return std::nullopt;
  std::istringstream fields(text.substr(paren + 2));
  ProcStat stat;
  std::string field;
  for (int i = 3; i <= 22 && fields >> field; ++i) {
    if (i == 3) stat.state = field[0];
    if (i == 22) stat.start_ticks = std::stoll(field);
  }
  return stat;
}

bool process_alive(const ClaimIdentity& who) {
  if (who.pid <= 0) return false;
  if (::kill(pid_t(who.pid), 0) != 0 && errno != EPERM) return false;
  const std::optional<ProcStat> stat = proc_stat(who.pid);
  if (!stat) return true; // no /proc: the signal check is all we have
  // A zombie has finished; a live pid with another start time reused the number.
  if (stat->state == 'Z') return false;
  return who.start_ticks == 0 || stat->start_ticks == who.start_ticks;
}

std::string describe(const ClaimHolder& h) {
  return fmt::format("pid {} on {}", h.who.pid, h.who.host);
}

bool same(const ClaimIdentity& a, const ClaimIdentity& b) {
  return a.pid == b.pid && a.host == b.host && a.start_ticks == b.start_ticks;
}

} // namespace

ClaimIdentity ClaimIdentity::current() {
  const int64_t pid = ::getpid();
  const std::optional<ProcStat> stat = proc_stat(pid);
  return {pid, host_name(), stat ? stat->start_ticks : 0};
}

const char* to_string(ClaimStatus status) {
  switch (status) {
  case ClaimStatus::claimed:
    return "claimed";
  case ClaimStatus::taken_over:
    return "taken over";
  case ClaimStatus::held:
    return "held by another process";
  case ClaimStatus::already_tuned:
    return "already tuned";
  }
  return "unknown";
}

bool claim_is_live(const ClaimHolder& holder, int64_t now) {
  if (now >= holder.expires_at) return false;
  return holder.who.host != host_name() || process_alive(holder.who);
}

std::optional<ClaimHolder> Database::claim_of(const RecordKey& key) {
  sql::Use select(statement("SELECT pid, host, pid_start, started_at, expires_at FROM claims "
                            "WHERE key = ?1"));
  select->bind(1, to_string(key));
  if (!select->step()) return std::nullopt;
  return ClaimHolder{{select->column_int(0), select->column_text(1), select->column_int(2)},
                     select->column_int(3),
                     select->column_int(4)};
}

ClaimResult Database::try_claim(const RecordKey& key, std::chrono::seconds ttl,
                                const std::string& template_hash, const ClaimIdentity& self) {
  // The record check, the claim check and the insert form one write transaction: between a
  // process seeing "no record, no claim" and inserting its claim nobody else can do either.
  sql::WriteTransaction tx(*conn_);
  ClaimResult result;
  if (std::optional<TuningRecord> record = find(key);
      record && record->template_hash == template_hash) {
    result.status = ClaimStatus::already_tuned;
    tx.commit();
    return result;
  }
  const int64_t now = unix_now();
  result.status = ClaimStatus::claimed;
  if (std::optional<ClaimHolder> holder = claim_of(key)) {
    if (!same(holder->who, self)) {
      if (claim_is_live(*holder, now)) {
        result.status = ClaimStatus::held;
        result.holder = *holder;
        tx.commit();
        return result;
      }
      result.status = ClaimStatus::taken_over;
      result.note = now >= holder->expires_at
                        ? fmt::format("the claim of {} expired {} s ago", describe(*holder),
                                      now - holder->expires_at)
                        : fmt::format("{} is no longer running", describe(*holder));
    }
  }
  result.holder = {self, now, now + int64_t(ttl.count())};
  sql::Use insert(statement("INSERT OR REPLACE INTO claims (key, pid, host, pid_start, "
                            "started_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"));
  insert->bind(1, to_string(key));
  insert->bind(2, self.pid);
  insert->bind(3, self.host);
  insert->bind(4, self.start_ticks);
  insert->bind(5, result.holder.started_at);
  insert->bind(6, result.holder.expires_at);
  insert->run();
  tx.commit();
  return result;
}

bool Database::release_claim(const RecordKey& key, const ClaimIdentity& self) {
  sql::WriteTransaction tx(*conn_);
  sql::Use erase(statement("DELETE FROM claims WHERE key = ?1 AND pid = ?2 AND host = ?3 AND "
                           "pid_start = ?4"));
  erase->bind(1, to_string(key));
  erase->bind(2, self.pid);
  erase->bind(3, self.host);
  erase->bind(4, self.start_ticks);
  erase->run();
  const bool released = sqlite3_changes(conn_->handle()) > 0;
  tx.commit();
  return released;
}

WaitResult Database::wait_for_record(const RecordKey& key, const std::string& template_hash,
                                     std::chrono::milliseconds timeout,
                                     std::chrono::milliseconds poll) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::optional<ClaimHolder> last;
  for (;;) {
    WaitResult result;
    // The record before the claim: a claimant puts its record, then releases.
    if ((result.record = find(key)) && result.record->template_hash == template_hash) return result;
    result.record.reset();
    const std::optional<ClaimHolder> holder = claim_of(key);
    if (!holder) {
      result.why_not = "nobody is tuning it (the claim was released without a record)";
      return result;
    }
    if (!claim_is_live(*holder, unix_now())) {
      result.why_not =
          fmt::format("{} stopped tuning it (died, or its claim expired)", describe(*holder));
      return result;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      result.why_not =
          fmt::format("timed out after {} ms waiting for {}", timeout.count(), describe(*holder));
      return result;
    }
    std::this_thread::sleep_for(poll);
  }
}

} // namespace attnjit::cache

// Single flight across processes: one claimant per key, the others wait for its record; a dead
// or expired claim is taken over.
#include "tests/test_cache_support.h"

#include <csignal>
#include <map>
#include <sys/wait.h>
#include <thread>

using namespace attnjit;
using namespace cache_test;
using namespace std::chrono_literals;

namespace {

const cache::RecordKey kKey = key_of(sample_record());

void prepare(const std::string& path) {
  cache::Database db(path, cache::OpenMode::read_write);
}

} // namespace

TEST_SUITE("cache.claims") {
  TEST_CASE("of 12 processes asking for one key at once, exactly one gets the claim") {
    TempDir dir;
    const std::string path = dir.file("claims.db");
    constexpr int kProcesses = 12;
    StartGate start, finish;
    Channel results;
    std::vector<pid_t> children;
    for (int i = 0; i < kProcesses; ++i)
      children.push_back(spawn([&] {
        start.wait_in_child();
        char outcome = 'E'; // every child answers, or the parent would wait for ever
        try {
          cache::Database db(path, cache::OpenMode::read_write); // also races to create it
          outcome = char('0' + int(db.try_claim(kKey, 60s, kTemplates).status));
        } catch (const std::exception& e) {
          fmt::print(stderr, "child {}: {}\n", ::getpid(), e.what());
        }
        results.send(outcome);
        finish.wait_in_child(); // the winner stays alive until every loser has looked
        return outcome == 'E' ? 1 : 0;
      }));
    results.children_started();
    start.release();
    std::map<char, int> counts;
    for (int i = 0; i < kProcesses; ++i)
      ++counts[results.receive()];
    finish.release();
    for (pid_t pid : children)
      CHECK(wait_for(pid) == 0);
    CHECK(counts['0' + int(cache::ClaimStatus::claimed)] == 1);
    CHECK(counts['0' + int(cache::ClaimStatus::held)] == kProcesses - 1);
  }

  TEST_CASE("the claim of a process that died is taken over, also before it is reaped") {
    TempDir dir;
    const std::string path = dir.file("claims.db");
    prepare(path);
    for (bool reaped : {true, false}) {
      INFO("reaped: ", reaped);
      const pid_t child = spawn([&] {
        cache::Database db(path, cache::OpenMode::read_write);
        return db.try_claim(kKey, 3600s, kTemplates).status == cache::ClaimStatus::claimed ? 0 : 1;
      });
      if (reaped) {
        REQUIRE(wait_for(child) == 0);
      } else {
        siginfo_t info{};
        REQUIRE(::waitid(P_PID, id_t(child), &info, WEXITED | WNOWAIT) == 0); // a zombie now
      }
      cache::Database db(path, cache::OpenMode::read_write);
      const cache::ClaimResult claim = db.try_claim(kKey, 60s, kTemplates);
      CHECK(claim.status == cache::ClaimStatus::taken_over);
      CHECK(contains(claim.note, fmt::format("pid {} on", child)));
      CHECK(contains(claim.note, "no longer running"));
      CHECK(db.release_claim(kKey));
      if (!reaped) CHECK(wait_for(child) == 0);
    }
  }

  TEST_CASE("another host's claim holds until it expires") {
    TempDir dir;
    const std::string path = dir.file("claims.db");
    cache::Database db(path, cache::OpenMode::read_write);
    const cache::ClaimIdentity elsewhere{4242, "another-host", 77};
    REQUIRE(db.try_claim(kKey, 3600s, kTemplates, elsewhere).status == cache::ClaimStatus::claimed);
    const cache::ClaimResult held = db.try_claim(kKey, 60s, kTemplates);
    CHECK(held.status == cache::ClaimStatus::held);
    CHECK(held.holder.who.host == "another-host");
    CHECK_FALSE(db.release_claim(kKey)); // not ours to release

    const cache::WaitResult waited = db.wait_for_record(kKey, kTemplates, 200ms, 20ms);
    CHECK_FALSE(waited.record);
    CHECK(contains(waited.why_not, "timed out after 200 ms waiting for pid 4242 on another-host"));

    REQUIRE(db.try_claim(kKey, 0s, kTemplates, elsewhere).status == cache::ClaimStatus::claimed);
    const cache::ClaimResult taken = db.try_claim(kKey, 60s, kTemplates);
    CHECK(taken.status == cache::ClaimStatus::taken_over);
    CHECK(contains(taken.note, "expired"));
  }

  TEST_CASE("a key with a current record needs no tuning; a stale record does") {
    TempDir dir;
    cache::Database db(dir.file("claims.db"), cache::OpenMode::read_write);
    db.put(sample_record());
    CHECK(db.try_claim(kKey, 60s, kTemplates).status == cache::ClaimStatus::already_tuned);
    CHECK_FALSE(db.claim_of(kKey));
    CHECK(db.try_claim(kKey, 60s, "fedcba9876543210").status == cache::ClaimStatus::claimed);
  }

  TEST_CASE("a waiter gets the record the claimant writes") {
    TempDir dir;
    const std::string path = dir.file("claims.db");
    prepare(path);
    Channel claimed;
    const pid_t tuner = spawn([&] {
      cache::Database db(path, cache::OpenMode::read_write);
      if (db.try_claim(kKey, 60s, kTemplates).status != cache::ClaimStatus::claimed) return 1;
      claimed.send('c');
      std::this_thread::sleep_for(300ms); // "tuning"
      db.put(sample_record());
      return db.release_claim(kKey) ? 0 : 2;
    });
    claimed.children_started();
    REQUIRE(claimed.receive() == 'c');
    cache::Database db(path, cache::OpenMode::read_write);
    CHECK(db.try_claim(kKey, 60s, kTemplates).status == cache::ClaimStatus::held);
    const cache::WaitResult waited = db.wait_for_record(kKey, kTemplates, 20s, 20ms);
    CHECK(waited.record == sample_record());
    CHECK(wait_for(tuner) == 0);
    CHECK(db.try_claim(kKey, 60s, kTemplates).status == cache::ClaimStatus::already_tuned);
  }

  TEST_CASE("a claim released without a record, or a claimant that dies, ends the wait") {
    TempDir dir;
    const std::string path = dir.file("claims.db");
    prepare(path);
    for (bool dies : {false, true}) {
      INFO("claimant dies: ", dies);
      Channel claimed;
      const pid_t tuner = spawn([&] {
        cache::Database db(path, cache::OpenMode::read_write);
        if (db.try_claim(kKey, 60s, kTemplates).status == cache::ClaimStatus::claimed)
          claimed.send('c');
        std::this_thread::sleep_for(200ms);
        if (dies) ::raise(SIGKILL);
        return db.release_claim(kKey) ? 0 : 2;
      });
      claimed.children_started();
      REQUIRE(claimed.receive() == 'c');
      cache::Database db(path, cache::OpenMode::read_write);
      const cache::WaitResult waited = db.wait_for_record(kKey, kTemplates, 20s, 20ms);
      CHECK_FALSE(waited.record);
      CHECK(contains(waited.why_not, dies ? "stopped tuning it" : "released without a record"));
      CHECK(wait_for(tuner) == (dies ? -SIGKILL : 0));
      if (dies) CHECK(db.try_claim(kKey, 60s, kTemplates).status == cache::ClaimStatus::taken_over);
      db.release_claim(kKey);
    }
  }
}

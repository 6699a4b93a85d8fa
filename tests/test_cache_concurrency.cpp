// Several processes on one file: overlapping writers, a writer killed with SIGKILL in the middle
// of a transaction, and a lock held for a while (waited for, never called corruption).
#include "tests/test_cache_support.h"

#include "cache/maintenance.h"

#include <chrono>
#include <csignal>
#include <map>
#include <random>
#include <thread>

using namespace attnjit;
using namespace cache_test;
using namespace std::chrono_literals;

namespace {

// Record `key` as process `writer` measured it: every number is derived from the writer, so a
// record stitched together from two writers would show.
cache::TuningRecord written_by(int writer, int key) {
  cache::TuningRecord r = sample_record();
  r.shape = {1, 64 * (key + 1), 64 * (key + 1)};
  r.median_ms = writer + 0.5;
  r.cv = writer / 1000.0;
  r.runs = 100 + writer;
  r.candidates_tried = writer;
  r.created_at = 1700000000 + writer;
  return r;
}

bool consistent(const cache::TuningRecord& r) {
  const int writer = r.candidates_tried;
  return r.median_ms == writer + 0.5 && r.cv == writer / 1000.0 && r.runs == 100 + writer &&
         r.created_at == 1700000000 + writer;
}

constexpr int kBatchRecords = 400;

// One batch: kBatchRecords records with batch = b, and a 1 MiB binary, in one transaction.
void write_batch(cache::Database& db, int b, const std::function<void(int)>& after_record) {
  cache::sql::WriteTransaction tx(db.connection());
  for (int i = 0; i < kBatchRecords; ++i) {
    cache::TuningRecord r = sample_record(i);
    r.shape.batch = b;
    db.put(r);
    after_record(i);
  }
  cache::BinaryKey key;
  key.source = fmt::format("batch {}", b);
  db.put_binary(key, {std::vector<char>(1 << 20, char(b)), {"kernel"}});
  tx.commit();
}

// Every batch is all there (with its binary) or not there at all.
void check_batches_whole(const std::string& path, std::map<int64_t, int>& per_batch) {
  cache::Database db(path, cache::OpenMode::read_only);
  for (const cache::StoredRecord& s : db.records())
    ++per_batch[s.record.shape.batch];
  for (const auto& [batch, count] : per_batch) {
    INFO("batch ", batch);
    CHECK(count == kBatchRecords);
    cache::BinaryKey key;
    key.source = fmt::format("batch {}", batch);
    const cache::BinaryLookup binary = db.find_binary(key);
    REQUIRE(binary.binary);
    CHECK(binary.binary->cubin.size() == size_t(1 << 20));
  }
}

} // namespace

TEST_SUITE("cache.concurrency") {
  TEST_CASE("16 processes writing overlapping keys at once: every record present and whole") {
    TempDir dir;
    const std::string path = dir.file("shared.db"); // created by whichever child comes first
    constexpr int kWriters = 16, kKeys = 64, kKeysEach = 24;
    StartGate start;
    std::vector<pid_t> children;
    for (int w = 0; w < kWriters; ++w)
      children.push_back(spawn([&, w] {
        start.wait_in_child();
        cache::Database db(path, cache::OpenMode::read_write);
        for (int i = 0; i < kKeysEach; ++i)
          db.put(written_by(w, (w * 4 + i) % kKeys)); // each key gets 6 writers
        return 0;
      }));
    start.release();
    for (pid_t pid : children)
      CHECK(wait_for(pid) == 0);

    cache::Database db(path, cache::OpenMode::read_only);
    CHECK(db.count_records() == kKeys);
    for (int k = 0; k < kKeys; ++k) {
      const std::optional<cache::TuningRecord> r = db.find(key_of(written_by(0, k)));
      REQUIRE_MESSAGE(r, "key ", k);
      CHECK(consistent(*r));
    }
    CHECK(cache::verify(path, kTemplates).ok());
  }

  TEST_CASE("a writer killed inside a transaction leaves the last committed state") {
    TempDir dir;
    const std::string path = dir.file("killed.db");
    Channel signal;
    const pid_t writer = spawn([&] {
      cache::Database db(path, cache::OpenMode::read_write);
      write_batch(db, 1, [](int) {});
      write_batch(db, 2, [&](int i) {
        if (i == kBatchRecords / 2) {
          signal.send('m'); // half of batch 2 is written, uncommitted
          std::this_thread::sleep_for(60s);
        }
      });
      return 0;
    });
    signal.children_started();
    REQUIRE(signal.receive() == 'm');
    ::kill(writer, SIGKILL);
    CHECK(wait_for(writer) == -SIGKILL);

    const cache::VerifyReport report = cache::verify(path, kTemplates);
    INFO(fmt::format("{}", fmt::join(report.problems, "\n")));
    CHECK(report.ok());
    std::map<int64_t, int> per_batch;
    check_batches_whole(path, per_batch);
    CHECK(per_batch.size() == 1);
    CHECK(per_batch.count(1) == 1);
    // The lock died with the writer: the next one gets straight in.
    cache::Database(path, cache::OpenMode::read_write).put(sample_record());
  }

  TEST_CASE("writers killed at random moments: every batch whole or absent") {
    TempDir dir;
    const std::string path = dir.file("random-kill.db");
    std::mt19937 rng(20240601);
    for (int round = 0; round < 4; ++round) {
      Channel started;
      const pid_t writer = spawn([&, round] {
        cache::Database db(path, cache::OpenMode::read_write);
        started.send('s');
        for (int b = 0;; ++b)
          write_batch(db, 100 * (round + 1) + b, [](int) {});
        return 0;
      });
      started.children_started();
      REQUIRE(started.receive() == 's');
      std::this_thread::sleep_for(std::chrono::milliseconds(20 + rng() % 200));
      ::kill(writer, SIGKILL);
      CHECK(wait_for(writer) == -SIGKILL);
      CHECK(cache::verify(path, kTemplates).ok());
      std::map<int64_t, int> per_batch;
      check_batches_whole(path, per_batch);
    }
  }

  TEST_CASE("a lock held by another process is waited out, not taken for corruption") {
    TempDir dir;
    const std::string path = dir.file("busy.db");
    cache::Database(path, cache::OpenMode::read_write);
    Channel locked;
    const pid_t holder = spawn([&] {
      cache::Database db(path, cache::OpenMode::read_write);
      cache::sql::WriteTransaction tx(db.connection());
      db.put(sample_record(1));
      locked.send('l');
      std::this_thread::sleep_for(700ms);
      tx.commit();
      return 0;
    });
    locked.children_started();
    REQUIRE(locked.receive() == 'l');
    cache::Database db(path, cache::OpenMode::read_write);
    CHECK(db.count_records() == 0); // WAL: a reader does not wait for the writer
    const auto begin = std::chrono::steady_clock::now();
    db.put(sample_record(2)); // BEGIN IMMEDIATE waits for the holder's COMMIT
    CHECK(std::chrono::steady_clock::now() - begin >= 400ms);
    CHECK(wait_for(holder) == 0);
    CHECK(db.count_records() == 2);
  }
}

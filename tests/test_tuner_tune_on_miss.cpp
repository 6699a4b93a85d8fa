// Tuning on a plan's cache miss without a GPU (the simulated bench): of many processes and
// threads missing one key, exactly one tunes it and the others get its record; a claimant that
// never finishes, a missing database and a failing tuning all end in the default config, saying
// why.
#include "tests/test_cache_support.h"

#include "codegen/embedded_templates.h"
#include "tuner/sim_bench.h"
#include "tuner/tune_on_miss.h"

#include <atomic>
#include <map>
#include <thread>

using namespace attnjit;
using namespace attnjit::tuner;
using namespace cache_test;
using namespace std::chrono_literals;

namespace {

AttentionProblem small_problem(Pass pass) {
  AttentionProblem p;
  p.spec.pass = pass;
  p.spec.head_dim_qk = p.spec.head_dim_v = 64;
  p.spec.num_heads = p.spec.num_kv_heads = 4;
  p.shape = {1, 512, 512};
  return p;
}

const DeviceInfo& sim_device() {
  static const DeviceInfo info = SimBench(0).device().info;
  return info;
}

// A simulated bench that counts its tunings (prepare() calls) and takes a while, so that every
// other caller arrives while the key is being tuned.
std::atomic<int> tunings{0};

MissOptions sim_options(const std::string& db, std::chrono::milliseconds wait = 60s) {
  MissOptions o;
  o.db_path = db;
  o.wait = wait;
  o.tune.budget.candidates = 3;
  o.tune.compile = [](const runtime::CompileRequest&) {
    runtime::CompiledProgram p;
    p.cubin = {'S', 'I', 'M'};
    p.lowered_names = {"fake_kernel"};
    return p;
  };
  o.make_bench = [](int device) -> std::unique_ptr<Bench> {
    struct Slow : SimBench {
      explicit Slow(int d) : SimBench(d) {}
      void prepare(const ProblemSetup& s) override {
        ++tunings;
        std::this_thread::sleep_for(300ms);
        SimBench::prepare(s);
      }
    };
    return std::make_unique<Slow>(device);
  };
  return o;
}

cache::RecordKey key_of(const AttentionProblem& p) {
  return {sim_device().name, p.spec, p.shape};
}

// A pipe a child process blocks on until the parent closes its write end.
struct Gate {
  int fds[2] = {-1, -1};
  Gate() { REQUIRE(::pipe(fds) == 0); }
  ~Gate() { close_end(0), close_end(1); }
  void close_end(int i) {
    if (fds[i] >= 0) ::close(fds[i]), fds[i] = -1;
  }
  void wait() {
    close_end(1);
    char c;
    while (::read(fds[0], &c, 1) < 0 && errno == EINTR) {
    }
  }
  void open() { close_end(1); }
};

} // namespace

TEST_SUITE("tuner.tune_on_miss") {
  TEST_CASE("of 4 processes with 3 threads each missing one key, exactly one tunes it") {
    TempDir dir;
    const std::string db = dir.file("cache.db");
    { cache::Database create(db, cache::OpenMode::read_write); }
    constexpr int kProcesses = 4, kThreads = 3;
    const AttentionProblem problem = small_problem(Pass::backward);
    StartGate start;
    cache_test::Channel results;
    std::vector<pid_t> children;
    for (int i = 0; i < kProcesses; ++i)
      children.push_back(spawn([&] {
        start.wait_in_child();
        std::vector<std::thread> threads;
        for (int t = 0; t < kThreads; ++t)
          threads.emplace_back([&] {
            char outcome = 'E';
            try {
              const MissResult r = tune_on_miss(problem, sim_device(), sim_options(db));
              outcome = char('0' + int(r.source));
              if (r.source == cache::LookupSource::default_config)
                fmt::print(stderr, "pid {}: {}\n", ::getpid(), r.note);
            } catch (const std::exception& e) {
              fmt::print(stderr, "pid {}: {}\n", ::getpid(), e.what());
            }
            results.send(outcome);
          });
        for (std::thread& t : threads)
          t.join();
        return 0;
      }));
    results.children_started();
    start.release();
    std::map<char, int> counts;
    for (int i = 0; i < kProcesses * kThreads; ++i)
      ++counts[results.receive()];
    for (pid_t pid : children)
      CHECK(wait_for(pid) == 0);
    const auto count = [&](cache::LookupSource s) { return counts['0' + int(s)]; };
    CHECK(count(cache::LookupSource::tuned) == 1);
    // The rest waited for that record; one that arrived after it was written found it at once.
    CHECK(count(cache::LookupSource::waited) + count(cache::LookupSource::exact) ==
          kProcesses * kThreads - 1);
    CHECK(count(cache::LookupSource::default_config) == 0);
    CHECK(counts['E'] == 0);

    cache::Database check(db, cache::OpenMode::read_write);
    CHECK(check.count_records() == 1);
    const std::optional<cache::TuningRecord> record = check.find(key_of(problem));
    REQUIRE(record);
    CHECK(record->spec.pass == Pass::backward);
    CHECK(record->template_hash == codegen::template_hash());
    CHECK_FALSE(check.claim_of(key_of(problem))); // released

    // Later misses of the key (a plan whose lookup ran before the record) find it and tune nothing.
    const int before = tunings.load();
    const MissResult again = tune_on_miss(problem, sim_device(), sim_options(db));
    CHECK(again.source == cache::LookupSource::exact);
    CHECK(again.config == record->config);
    CHECK(tunings.load() == before);
  }

  // SQLite's locks are POSIX record locks, which a process loses when it closes any descriptor of
  // the file. Were opening a database to read its header through a descriptor of its own (the
  // size check of its own open, or another thread's open beside it), another process closing its
  // connection would think itself the last one, checkpoint and delete the -wal file under this
  // one, and this one's next commit (the claim's release) would go to the deleted file: lost.
  TEST_CASE("opening the database keeps this process's locks: a claim's release is not lost") {
    TempDir dir;
    const std::string db = dir.file("cache.db");
    { cache::Database create(db, cache::OpenMode::read_write); } // its -wal file goes with it
    const cache::RecordKey key = key_of(small_problem(Pass::forward));
    const cache::ClaimIdentity self{4243, "another-host", 9};
    // Forked before this process opens the file: SQLite's state must not cross a fork.
    Gate first, second;
    const pid_t closer = spawn([&] {
      second.close_end(1);
      first.wait();
      cache::Database other(db, cache::OpenMode::read_write);
      return other.claim_of(key) ? 0 : 1; // then closes: the last connection, were ours unlocked
    });
    const pid_t reader = spawn([&] {
      first.close_end(1);
      second.wait();
      cache::Database other(db, cache::OpenMode::read_write);
      return other.claim_of(key) ? 1 : 0;
    });
    cache::Database mine(db, cache::OpenMode::read_write); // its size check reads the header
    REQUIRE(mine.try_claim(key, 3600s, codegen::template_hash(), self).status ==
            cache::ClaimStatus::claimed);
    { cache::Database beside(db, cache::OpenMode::read_write); } // as another thread's would
    first.open();
    CHECK(wait_for(closer) == 0);
    CHECK(mine.release_claim(key, self));
    second.open();
    CHECK(wait_for(reader) == 0); // 1: the release went to a deleted -wal file
  }

  TEST_CASE("threads of one process: one tunes, the others wait for its record") {
    TempDir dir;
    const std::string db = dir.file("cache.db");
    const AttentionProblem problem = small_problem(Pass::forward);
    const int before = tunings.load();
    std::vector<MissResult> results(4);
    std::vector<std::thread> threads;
    for (MissResult& r : results)
      threads.emplace_back([&] { r = tune_on_miss(problem, sim_device(), sim_options(db)); });
    for (std::thread& t : threads)
      t.join();
    CHECK(tunings.load() == before + 1);
    int tuned = 0, waited = 0;
    for (const MissResult& r : results) {
      INFO(r.note);
      tuned += r.source == cache::LookupSource::tuned;
      waited += r.source == cache::LookupSource::waited;
      CHECK(r.config == results[0].config);
      REQUIRE(r.record);
    }
    CHECK(tuned == 1);
    CHECK(waited == 3);
  }

  TEST_CASE("a claimant that does not finish in time: the default config, and why") {
    TempDir dir;
    const std::string db = dir.file("cache.db");
    const AttentionProblem problem = small_problem(Pass::backward);
    {
      cache::Database other(db, cache::OpenMode::read_write);
      REQUIRE(other
                  .try_claim(key_of(problem), 3600s, codegen::template_hash(),
                             {4242, "another-host", 7})
                  .status == cache::ClaimStatus::claimed);
    }
    const int before = tunings.load();
    const MissResult r = tune_on_miss(problem, sim_device(), sim_options(db, 300ms));
    CHECK(r.source == cache::LookupSource::default_config);
    CHECK(r.config == codegen::default_config(problem.spec, limits_of(sim_device())));
    CHECK(contains(r.note, "pid 4242 on another-host is tuning it"));
    CHECK(contains(r.note, "timed out after"));
    CHECK(tunings.load() == before);
  }

  TEST_CASE("no user database, or a tuning that fails: the default config, and why") {
    const AttentionProblem problem = small_problem(Pass::forward);
    const MissResult none = tune_on_miss(problem, sim_device(), sim_options(""));
    CHECK(none.source == cache::LookupSource::default_config);
    CHECK(contains(none.note, "writable user database"));

    TempDir dir;
    MissOptions failing = sim_options(dir.file("cache.db"));
    failing.make_bench = [](int) -> std::unique_ptr<Bench> {
      throw Error(ErrorKind::no_device, "no GPU here");
    };
    const MissResult failed = tune_on_miss(problem, sim_device(), failing);
    CHECK(failed.source == cache::LookupSource::default_config);
    CHECK(contains(failed.note, "no GPU here"));
    cache::Database check(dir.file("cache.db"), cache::OpenMode::read_write);
    CHECK_FALSE(check.claim_of(key_of(problem))); // released for the next one to try
    CHECK(check.count_records() == 0);
  }

  TEST_CASE("a claim lost while tuning: the record stands, and the note says so") {
    const AttentionProblem problem = small_problem(Pass::forward);
    TempDir dir;
    const std::string path = dir.file("cache.db");
    MissOptions options = sim_options(path);
    const auto slow_bench = options.make_bench;
    // Another connection removes the claim while the key is being tuned (as a takeover would).
    options.make_bench = [&](int device) {
      cache::Database other(path, cache::OpenMode::read_write);
      CHECK(other.release_claim(key_of(problem)));
      return slow_bench(device);
    };
    const MissResult tuned = tune_on_miss(problem, sim_device(), options);
    CHECK(tuned.source == cache::LookupSource::tuned);
    CHECK(contains(tuned.note, "another process had taken the claim over"));
    cache::Database check(path, cache::OpenMode::read_only);
    CHECK(check.count_records() == 1);
  }
}

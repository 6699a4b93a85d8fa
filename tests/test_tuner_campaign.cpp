// Tuning lists of problems into a database without a GPU: resume (finished keys are skipped),
// unsupported problems, several devices into one file, the seed suite and problem files.
#include "cache/database.h"
#include "codegen/codegen.h"
#include "codegen/embedded_templates.h"
#include "tuner/campaign.h"
#include "tuner/sim_bench.h"

#include <attnjit/error.h>

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

using namespace attnjit;
using namespace attnjit::tuner;

namespace {

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "attnjit-tune-XXXXXX").string();
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

CampaignOptions sim_options(const std::string& db) {
  CampaignOptions o;
  o.db_path = db;
  o.tune.compile = [](const runtime::CompileRequest&) {
    runtime::CompiledProgram p;
    p.cubin = {'S', 'I', 'M'};
    p.lowered_names = {"fake_kernel"};
    return p;
  };
  return o;
}

std::vector<NamedProblem> three_problems() {
  std::vector<NamedProblem> out;
  for (int heads : {4, 8, 12}) {
    AttentionProblem p;
    p.spec.head_dim_qk = p.spec.head_dim_v = 64;
    p.spec.num_heads = p.spec.num_kv_heads = heads;
    p.shape = {1, 512, 512};
    out.push_back({"h" + std::to_string(heads), p});
  }
  return out;
}

// Counts the benches' prepare() calls: a skipped problem never reaches the device.
struct Benches {
  int devices = 1;
  int prepares = 0;
  BenchFactory factory() {
    return [this](int device) -> std::unique_ptr<Bench> {
      struct Counting : SimBench {
        int* count;
        Counting(int d, int n, int* c) : SimBench(d, {n, false}), count(c) {}
        void prepare(const ProblemSetup& s) override { ++*count, SimBench::prepare(s); }
      };
      return std::make_unique<Counting>(device, devices, &prepares);
    };
  }
};

int count(const std::vector<ProblemResult>& results, ProblemState state) {
  int n = 0;
  for (const ProblemResult& r : results)
    n += r.state == state;
  return n;
}

} // namespace

TEST_SUITE("tuner.campaign") {
  TEST_CASE("records are written as problems finish, and a second run skips them") {
    TempDir dir;
    const std::string db = (dir.path / "tune.db").string();
    Benches benches;
    const auto first = run_campaign(three_problems(), benches.factory(), sim_options(db));
    CHECK(count(first, ProblemState::tuned) == 3);
    CHECK(benches.prepares == 3);
    {
      cache::Database check(db, cache::OpenMode::read_write);
      CHECK(check.count_records() == 3);
      const cache::TuningRecord& r = *first[1].record;
      CHECK(check.find(cache::key_of(r)) == r);
      CHECK(r.device.sku == "Simulated GPU");
      CHECK(r.template_hash == codegen::template_hash());
      CHECK(r.nvrtc_version == nvrtc_version());
      CHECK(r.attnjit_version == ATTNJIT_VERSION);
      CHECK(r.candidates_tried + r.candidates_pruned > 0);
      CHECK(r.tflops > 0);
      // The winner's CUBIN is in the binary cache under the key a plan would compute.
      const codegen::GeneratedKernel k = codegen::generate_forward(r.spec, r.config);
      const cache::BinaryLookup bin = check.find_binary(
          {k.source, k.name_expressions(), "sm_90a", r.nvrtc_version, {}, r.template_hash});
      REQUIRE(bin.binary);
      CHECK(bin.binary->cubin == std::vector<char>{'S', 'I', 'M'});
    }
    const auto second = run_campaign(three_problems(), benches.factory(), sim_options(db));
    CHECK(count(second, ProblemState::skipped) == 3);
    CHECK(benches.prepares == 3);
    CHECK(second[2].record == first[2].record);

    CampaignOptions again = sim_options(db);
    again.retune = true;
    CHECK(count(run_campaign(three_problems(), benches.factory(), again), ProblemState::tuned) ==
          3);
  }

  TEST_CASE("an interrupted run resumes: only the keys without a record are tuned") {
    TempDir dir;
    const std::string db = (dir.path / "tune.db").string();
    Benches benches;
    std::vector<NamedProblem> list = three_problems();
    run_campaign({list[1]}, benches.factory(), sim_options(db)); // the run that stopped early
    const auto resumed = run_campaign(list, benches.factory(), sim_options(db));
    CHECK(resumed[0].state == ProblemState::tuned);
    CHECK(resumed[1].state == ProblemState::skipped);
    CHECK(resumed[2].state == ProblemState::tuned);
    CHECK(benches.prepares == 3);
  }

  TEST_CASE("unsupported problems are reported and leave no record") {
    TempDir dir;
    const std::string db = (dir.path / "tune.db").string();
    Benches benches;
    std::vector<NamedProblem> list;
    // No such kernels: head dim 80; a backward of head dims 256 + 256.
    list.push_back({"d80", parse_problem_line("--head-dim=80")});
    list.push_back({"bwd d256", parse_problem_line("--pass=bwd --head-dim=256")});
    list.push_back({"bad", parse_problem_line("--heads=6 --kv-heads=4")});
    const auto results = run_campaign(list, benches.factory(), sim_options(db));
    CHECK(count(results, ProblemState::unsupported) == 2);
    CHECK(results[2].state == ProblemState::failed); // invalid, not merely unsupported
    for (const ProblemResult& r : results)
      CHECK_FALSE(r.message.empty());
    cache::Database check(db, cache::OpenMode::read_write);
    CHECK(check.count_records() == 0);
  }

  TEST_CASE("backward problems tune into the database like forward ones") {
    TempDir dir;
    const std::string db = (dir.path / "tune.db").string();
    Benches benches;
    std::vector<NamedProblem> list = seed_suite(false, true);
    list.resize(2); // mhsa-1 (d64, packed) and mhsa-2 (d128)
    list.push_back(three_problems()[0]);
    list.back().problem.spec.pass = Pass::backward;
    list.back().problem.spec.deterministic = true; // not a key column: one record serves both
    const auto results = run_campaign(list, benches.factory(), sim_options(db));
    REQUIRE(count(results, ProblemState::tuned) == 3);
    cache::Database check(db, cache::OpenMode::read_write);
    CHECK(check.count_records() == 3);
    for (const ProblemResult& r : results) {
      INFO(r.problem.name);
      const cache::TuningRecord& record = *r.record;
      CHECK(record.spec.pass == Pass::backward);
      CHECK(check.find(cache::key_of(record)) == record);
      const TuneReport& report = *r.report;
      // The backward's own axes only: two stages (three only warp-specialized), Q never in
      // registers.
      for (const CandidateReport& c : report.candidates)
        if (c.pruned.ok()) {
          CHECK((c.config.num_stages == 2 ||
                 (c.config.warp_specialized && c.config.num_stages == 3)));
          CHECK_FALSE(c.config.q_in_registers);
        }
      CHECK(report.tried >= 6);
      CHECK(report.default_config ==
            codegen::default_config(record.spec, codegen::arch_limits("sm_90a")));
      // The winner's CUBIN is stored under the key BackwardPlan computes.
      const codegen::GeneratedKernel k =
          codegen::generate_backward(r.problem.problem.spec, record.config);
      cache::BinaryKey binary{k.source, k.name_expressions(), "sm_90a"};
      binary.nvrtc_version = record.nvrtc_version;
      binary.template_hash = record.template_hash;
      CHECK(check.find_binary(binary).binary);
    }
    // The forward record of the same spec and shape is another key.
    const auto forward = run_campaign({three_problems()[0]}, benches.factory(), sim_options(db));
    CHECK(forward[0].state == ProblemState::tuned);
    CHECK(check.count_records() == 4);
  }

  TEST_CASE("--devices all: one bench per GPU, every record in one database") {
    TempDir dir;
    const std::string db = (dir.path / "tune.db").string();
    Benches benches;
    benches.devices = 2;
    CampaignOptions options = sim_options(db);
    options.all_devices = true;
    std::vector<NamedProblem> list = three_problems();
    for (NamedProblem p : three_problems()) {
      p.problem.shape.batch = 2;
      list.push_back(p);
    }
    const auto results = run_campaign(list, benches.factory(), options);
    CHECK(count(results, ProblemState::tuned) == 6);
    std::set<int> devices;
    for (const ProblemResult& r : results)
      devices.insert(r.device);
    CHECK(devices.size() >= 1);
    CHECK(*devices.rbegin() <= 1);
    cache::Database check(db, cache::OpenMode::read_write);
    CHECK(check.count_records() == 6);
  }

  TEST_CASE("the seed suite: five types, three configurations each, per pass") {
    const auto fwd = seed_suite(true, false);
    REQUIRE(fwd.size() == 15);
    CHECK(seed_suite(true, true).size() == 30);
    CHECK(fwd[0].problem.spec.layout == Layout::packed_qkv);
    CHECK(fwd[7].name == "gqa-2 fwd");
    CHECK(fwd[7].problem.spec.num_kv_heads == 8);
    CHECK(fwd[10].problem.spec.num_kv_heads == 1);
    CHECK(fwd[14].name == "mla-3 fwd");
    CHECK(fwd[14].problem.spec.num_heads == 128);
    CHECK(seed_suite(false, true)[0].problem.spec.pass == Pass::backward);
    for (const NamedProblem& p : fwd)
      if (!p.name.starts_with("mla"))
        CHECK(std::string(attention_type(p.problem.spec)) ==
              p.name.substr(0, 3 + (p.name[3] != '-')));
  }

  TEST_CASE("problem lines take the CLI's problem flags") {
    const AttentionProblem p =
        parse_problem_line("--heads=32 --kv-heads=8 --head-dim=64 --seqlen=2048 --seqlen-k=1024 "
                           "--batch=2 --causal --dtype=fp16 --layout=separate --pass=bwd");
    CHECK(p.spec.num_heads == 32);
    CHECK(p.spec.num_kv_heads == 8);
    CHECK(p.spec.head_dim_v == 64);
    CHECK(p.shape == AttentionShape{2, 2048, 1024});
    CHECK(p.spec.mask == Mask::causal);
    CHECK(p.spec.dtype == DType::fp16);
    CHECK(p.spec.pass == Pass::backward);
    CHECK(parse_problem_line("").spec == KernelSpec{});
    CHECK_THROWS_WITH_AS(parse_problem_line("--heads=x"), doctest::Contains("not a number"), Error);
    CHECK_THROWS_WITH_AS(parse_problem_line("--frobnicate"), doctest::Contains("unknown"), Error);

    TempDir dir;
    const std::string file = (dir.path / "problems.txt").string();
    std::ofstream(file) << "# seed-like\n--heads=12 --head-dim=64\n\n--heads=8 --bogus=1\n";
    CHECK_THROWS_WITH_AS(parse_problem_file(file), doctest::Contains("problems.txt:4"), Error);
    std::ofstream(file) << "--heads=12 --head-dim=64\n  # indented comment\n--heads=4\n";
    const auto list = parse_problem_file(file);
    REQUIRE(list.size() == 2);
    CHECK(list[1].name == file + ":3");
  }
}

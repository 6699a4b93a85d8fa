#include "apps/cmd_tune_output.h"

#include <attnjit/format.h>

#include <fmt/format.h>

#include <cmath>

namespace attnjit::apps {
namespace {

std::string short_config(const TileConfig& c) {
  return fmt::format("{}x{} w{} s{}{}{}{}", c.block_m, c.block_n, c.num_warps, c.num_stages,
                     c.q_in_registers ? " q" : "", c.wgmma ? " wgmma" : "",
                     c.warp_specialized ? " ws" : "");
}

std::string reasons(const tuner::TuneReport& t) {
  std::string out;
  for (const auto& [reason, count] : t.pruned_by_reason)
    out += fmt::format("{}{} {}", out.empty() ? "" : ", ", reason, count);
  return out.empty() ? "none" : out;
}

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\')
      out += '\\', out += c;
    else if (c == '\n')
      out += "\\n";
    else if (static_cast<unsigned char>(c) < 0x20)
      out += fmt::format("\\u{:04x}", int(c));
    else
      out += c;
  }
  return out;
}

std::string json_config(const TileConfig& c) {
  return fmt::format(R"({{"block_m":{},"block_n":{},"num_warps":{},"num_stages":{},)"
                     R"("q_in_registers":{},"wgmma":{},"warp_specialized":{}}})",
                     c.block_m, c.block_n, c.num_warps, c.num_stages, c.q_in_registers, c.wgmma,
                     c.warp_specialized);
}

} // namespace

void TuneOutput::clear_line() {
  if (!line_open_) return;
  std::fputs("\r\033[2K", stdout);
  line_open_ = false;
}

void TuneOutput::started(const tuner::ProblemResult& r) {
  if (mode_ == TuneOutputMode::plain)
    fmt::print("[{}/{}] {}: {} {} on GPU {}\n", r.index + 1, problems_, r.problem.name,
               r.problem.problem.spec, r.problem.problem.shape, r.device);
  std::fflush(stdout);
}

void TuneOutput::progress(const tuner::ProblemResult& r, const tuner::Progress& p) {
  if (mode_ != TuneOutputMode::terminal) return;
  clear_line();
  fmt::print("[{}/{}] {}: compiled {}/{} timed {} (screened {}) rejected {} pruned {}", r.index + 1,
             problems_, r.problem.name, p.compiled, p.total, p.timed, p.screened, p.rejected,
             p.pruned);
  if (p.best) fmt::print(" best {:.3f} ms ({})", p.best_ms, short_config(*p.best));
  std::fflush(stdout);
  line_open_ = true;
}

void TuneOutput::finished(const tuner::ProblemResult& r) {
  if (mode_ == TuneOutputMode::json) {
    fmt::print("{}\n", to_json(r));
    std::fflush(stdout);
    return;
  }
  clear_line();
  const std::string head = fmt::format("[{}/{}] {} {}", r.index + 1, problems_, r.problem.name,
                                       tuner::to_string(r.state));
  if (r.state != tuner::ProblemState::tuned) {
    fmt::print("{}: {}\n", head, r.message);
  } else {
    const tuner::TuneReport& t = *r.report;
    fmt::print("{}: {} {:.3f} ms {:.1f} TFLOP/s (cv {:.1f}%{}), default {} {:.3f} ms, {:.2f}x; "
               "tried {} (screened {}), rejected {}, pruned {} ({}); {:.1f} s (inputs {:.1f}, "
               "compile wait {:.1f}, check and time {:.1f}, finalists {:.1f})\n",
               head, short_config(t.winner), t.median_ms, t.tflops, t.winner_outcome.time.cv * 100,
               t.winner_outcome.time.noisy ? ", noisy" : "", short_config(t.default_config),
               t.default_ms, t.speedup, t.tried, t.screened, t.rejected, t.pruned, reasons(t),
               t.seconds, t.prepare_seconds, t.compile_wait_seconds, t.evaluate_seconds,
               t.final_seconds);
    for (const tuner::CandidateReport& c : t.candidates)
      if (c.outcome && c.outcome->status != tuner::Status::ok)
        fmt::print("    rejected {} ({}): {}\n", c.slug, tuner::to_string(c.outcome->status),
                   c.outcome->detail);
    if (!t.note.empty()) fmt::print("    note: {}\n", t.note);
  }
  std::fflush(stdout);
}

void TuneOutput::summary(const std::vector<tuner::ProblemResult>& results, double seconds) {
  if (mode_ == TuneOutputMode::json) return;
  clear_line();
  int count[5] = {};
  int faster = 0, timed = 0;
  for (const tuner::ProblemResult& r : results) {
    ++count[int(r.state)];
    if (r.report && r.report->speedup > 0) {
      ++timed;
      faster += r.report->speedup >= 1.1;
    }
  }
  fmt::print("{} problems in {:.1f} s: {} tuned, {} skipped (already tuned), {} held elsewhere, "
             "{} unsupported, {} failed",
             results.size(), seconds, count[0], count[1], count[2], count[3], count[4]);
  if (timed > 0) fmt::print("; >= 1.1x over the default on {} of {}", faster, timed);
  fmt::print("\n");
}

void TuneOutput::dry_run(const tuner::NamedProblem& problem, const tuner::TuneReport& t) {
  int compiled = 0;
  for (const tuner::CandidateReport& c : t.candidates)
    compiled += c.pruned.ok() && !c.skipped;
  fmt::print("{}: {} {} on {}: {} configs, {} compiled and accepted, {} pruned ({}); {:.1f} s\n",
             problem.name, problem.problem.spec, problem.problem.shape, t.arch, t.enumerated,
             compiled, t.pruned, reasons(t), t.seconds);
}

std::string to_json(const tuner::ProblemResult& r) {
  std::string out = fmt::format(
      R"({{"index":{},"name":"{}","state":"{}","spec":"{}","shape":"{}","device":{})", r.index,
      escape(r.problem.name), tuner::to_string(r.state), escape(to_string(r.problem.problem.spec)),
      escape(to_string(r.problem.problem.shape)), r.device);
  if (!r.message.empty()) out += fmt::format(R"(,"message":"{}")", escape(r.message));
  if (r.record)
    out += fmt::format(R"(,"config":{},"median_ms":{},"cv":{},"tflops":{},"max_error":{},)"
                       R"("noisy":{},"tried":{},"pruned":{},"rejected":{})",
                       json_config(r.record->config), r.record->median_ms, r.record->cv,
                       r.record->tflops, r.record->max_error, r.record->noisy,
                       r.record->candidates_tried, r.record->candidates_pruned,
                       r.record->candidates_rejected);
  if (r.report) {
    const tuner::TuneReport& t = *r.report;
    out += fmt::format(
        R"(,"default_config":{},"default_ms":{},"speedup":{},"screened":{},"seconds":{},)"
        R"("phase_seconds":{{"prepare":{},"compile_wait":{},"evaluate":{},"final":{}}})",
        json_config(t.default_config), t.default_ms, t.speedup, t.screened, t.seconds,
        t.prepare_seconds, t.compile_wait_seconds, t.evaluate_seconds, t.final_seconds);
    std::string by_reason, rejected, timed;
    for (const auto& [reason, n] : t.pruned_by_reason)
      by_reason += fmt::format(R"({}"{}":{})", by_reason.empty() ? "" : ",", reason, n);
    for (const tuner::CandidateReport& c : t.candidates) {
      if (!c.outcome) continue;
      if (c.outcome->status != tuner::Status::ok)
        rejected += fmt::format(R"({}{{"config":{},"status":"{}","detail":"{}"}})",
                                rejected.empty() ? "" : ",", json_config(c.config),
                                tuner::to_string(c.outcome->status), escape(c.outcome->detail));
      else // the landscape: every candidate's first-round median (finalists: also the final one;
           // screened: the short measurement's)
        timed += fmt::format(R"({}{{"config":{},"median_ms":{},"final_ms":{},"screened":{}}})",
                             timed.empty() ? "" : ",", json_config(c.config),
                             c.outcome->time.median_ms, c.final_ms, c.outcome->screened);
    }
    out += fmt::format(R"(,"pruned_by_reason":{{{}}},"rejected_configs":[{}],"timed_configs":[{}])",
                       by_reason, rejected, timed);
  }
  return out + "}";
}

} // namespace attnjit::apps

#include "tuner/suite.h"

#include <attnjit/error.h>

#include <fmt/format.h>

#include <charconv>
#include <fstream>
#include <optional>
#include <sstream>

namespace attnjit::tuner {

std::vector<NamedProblem> seed_suite(bool forward, bool backward) {
  struct Row {
    const char* type;
    int64_t batch, seqlen;
    int heads, kv_heads, dqk, dv;
    Layout layout;
  };
  // /work/shared/seed/000_5b005b635eb5ddc3.txt, in its order.
  static const Row rows[] = {
      {"mhsa", 2, 2048, 12, 12, 64, 64, Layout::packed_qkv},
      {"mhsa", 1, 4096, 32, 32, 128, 128, Layout::packed_qkv},
      {"mhsa", 1, 2048, 40, 40, 128, 128, Layout::packed_qkv},
      {"mha", 2, 2048, 12, 12, 64, 64, Layout::separate},
      {"mha", 1, 4096, 32, 32, 128, 128, Layout::separate},
      {"mha", 1, 2048, 40, 40, 128, 128, Layout::separate},
      {"gqa", 2, 2048, 32, 8, 64, 64, Layout::separate},
      {"gqa", 1, 4096, 32, 8, 128, 128, Layout::separate},
      {"gqa", 1, 2048, 40, 8, 128, 128, Layout::separate},
      {"mqa", 2, 2048, 16, 1, 64, 64, Layout::separate},
      {"mqa", 1, 4096, 32, 1, 128, 128, Layout::separate},
      {"mqa", 1, 2048, 40, 1, 128, 128, Layout::separate},
      {"mla", 2, 2048, 32, 32, 128, 128, Layout::separate},
      {"mla", 1, 4096, 64, 64, 128, 128, Layout::separate},
      {"mla", 1, 2048, 128, 128, 128, 128, Layout::separate},
  };
  std::vector<NamedProblem> out;
  for (Pass pass : {Pass::forward, Pass::backward}) {
    if ((pass == Pass::forward && !forward) || (pass == Pass::backward && !backward)) continue;
    for (size_t i = 0; i < std::size(rows); ++i) {
      const Row& r = rows[i];
      AttentionProblem p;
      p.spec = {pass, DType::bf16, r.dqk, r.dv, r.heads, r.kv_heads, r.layout, Mask::none};
      p.shape = {r.batch, r.seqlen, r.seqlen};
      out.push_back({fmt::format("{}-{} {}", r.type, i % 3 + 1, to_string(pass)), p});
    }
  }
  return out;
}

namespace {

template <class T> T number(std::string_view flag, std::string_view text) {
  T value{};
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size())
    throw Error(ErrorKind::invalid_argument, fmt::format("--{}: '{}' is not a number", flag, text));
  return value;
}

} // namespace

AttentionProblem parse_problem_line(std::string_view line) {
  AttentionProblem p;
  std::optional<int> kv_heads, head_dim_v;
  std::optional<int64_t> seqlen_q, seqlen_k;
  int64_t seqlen = p.shape.seqlen_q;
  std::istringstream words{std::string(line)};
  for (std::string word; words >> word;) {
    if (!word.starts_with("--"))
      throw Error(ErrorKind::invalid_argument, fmt::format("'{}' is not a --flag", word));
    const size_t eq = word.find('=');
    const std::string flag = word.substr(2, eq == std::string::npos ? eq : eq - 2);
    const std::string value = eq == std::string::npos ? "" : word.substr(eq + 1);
    const auto choice = [&](std::initializer_list<const char*> names) {
      for (size_t i = 0; i < names.size(); ++i)
        if (value == names.begin()[i]) return int(i);
      throw Error(ErrorKind::invalid_argument,
                  fmt::format("--{}: unknown value '{}'", flag, value));
    };
    if (flag == "causal" && (value.empty() || value == "true"))
      p.spec.mask = Mask::causal;
    else if (flag == "dtype")
      p.spec.dtype = DType(choice({"bf16", "fp16"}));
    else if (flag == "layout")
      p.spec.layout = Layout(choice({"separate", "packed"}));
    else if (flag == "pass")
      p.spec.pass = Pass(choice({"fwd", "bwd"}));
    else if (flag == "batch")
      p.shape.batch = number<int64_t>(flag, value);
    else if (flag == "seqlen")
      seqlen = number<int64_t>(flag, value);
    else if (flag == "seqlen-q")
      seqlen_q = number<int64_t>(flag, value);
    else if (flag == "seqlen-k")
      seqlen_k = number<int64_t>(flag, value);
    else if (flag == "heads")
      p.spec.num_heads = number<int>(flag, value);
    else if (flag == "kv-heads")
      kv_heads = number<int>(flag, value);
    else if (flag == "head-dim")
      p.spec.head_dim_qk = number<int>(flag, value);
    else if (flag == "head-dim-v")
      head_dim_v = number<int>(flag, value);
    else if (flag == "scale")
      p.softmax_scale = number<float>(flag, value);
    else
      throw Error(ErrorKind::invalid_argument, fmt::format("unknown problem flag '{}'", word));
  }
  p.spec.num_kv_heads = kv_heads.value_or(p.spec.num_heads);
  p.spec.head_dim_v = head_dim_v.value_or(p.spec.head_dim_qk);
  p.shape.seqlen_q = seqlen_q.value_or(seqlen);
  p.shape.seqlen_k = seqlen_k.value_or(seqlen);
  return p;
}

std::vector<NamedProblem> parse_problem_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(ErrorKind::invalid_argument, fmt::format("cannot read {}", path));
  std::vector<NamedProblem> out;
  int number = 0;
  for (std::string line; std::getline(in, line);) {
    ++number;
    const size_t first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    try {
      out.push_back({fmt::format("{}:{}", path, number), parse_problem_line(line)});
    } catch (const Error& e) {
      throw Error(e.kind(), fmt::format("{}:{}: {}", path, number, e.what()));
    }
  }
  return out;
}

} // namespace attnjit::tuner

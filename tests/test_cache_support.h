// Helpers shared by the tests/test_cache_*.cpp files: a scratch folder, sample records, child
// processes, and error capture.
#pragma once

#include "cache/database.h"

#include <attnjit/cache.h>
#include <attnjit/error.h>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

namespace cache_test {

namespace fs = std::filesystem;
using namespace attnjit;

// A fresh folder under $TMPDIR, removed with everything in it when the test ends.
class TempDir {
public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "attnjit-cache-test-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::permissions(path_, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const fs::path& path() const { return path_; }

  // The names of everything in the folder, to check that nothing appeared.
  std::set<std::string> listing() const { return listing_of(path_); }
  static std::set<std::string> listing_of(const fs::path& folder) {
    std::set<std::string> names;
    for (const auto& entry : fs::directory_iterator(folder))
      names.insert(entry.path().filename().string());
    return names;
  }

private:
  fs::path path_;
};

inline const char* kH100 = "NVIDIA H100 80GB HBM3";
inline const char* kTemplates = "0123456789abcdef";

// A plausible record; `n` varies the shape (seqlen 512 * (n + 1)) and the measurements.
inline cache::TuningRecord sample_record(int n = 0, const std::string& sku = kH100) {
  cache::TuningRecord r;
  r.device = {sku, 9, 0, 132, 13000};
  r.shape = {1, 512 * (n + 1), 512 * (n + 1)};
  r.config = {128, 64, 4, 2, false};
  r.median_ms = 0.5 + n;
  r.cv = 0.01;
  r.runs = 100;
  r.tflops = 400 - n;
  r.max_error = 0.0039;
  r.candidates_tried = 40, r.candidates_pruned = 12, r.candidates_rejected = 1;
  r.nvrtc_version = "13.0";
  r.template_hash = kTemplates;
  r.attnjit_version = "0.1.0";
  r.created_at = 1700000000 + n;
  return r;
}

inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::cache);
    return e.what();
  }
  FAIL("expected an attnjit::Error");
  return {};
}

inline bool contains(const std::string& text, const std::string& piece) {
  return text.find(piece) != std::string::npos;
}

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// Runs `body` in a child process and returns its pid. The child exits with body's result, or 99
// when it throws: doctest's macros must not run there.
inline pid_t spawn(const std::function<int()>& body) {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int code = 99;
    try {
      code = body();
    } catch (const std::exception& e) {
      fmt::print(stderr, "child {}: {}\n", ::getpid(), e.what()); // the parent sees only 99
    } catch (...) {
    }
    ::_exit(code);
  }
  return pid;
}

// The child's exit code; -signal when a signal ended it.
inline int wait_for(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1000;
}

// Blocks children until release(): all of them start their work at once.
class StartGate {
public:
  StartGate() { REQUIRE(::pipe(fds_) == 0); }
  ~StartGate() { close_all(); }
  void wait_in_child() {
    ::close(fds_[1]);
    char c;
    while (::read(fds_[0], &c, 1) < 0 && errno == EINTR) {
    }
    ::close(fds_[0]);
  }
  void release() { close_all(); } // EOF wakes every reader
private:
  void close_all() {
    for (int& fd : fds_)
      if (fd >= 0) ::close(fd), fd = -1;
  }
  int fds_[2] = {-1, -1};
};

// A one-way byte channel from children to the parent. The parent closes its write end once the
// children exist, so a child that dies without sending reads as '\0', not as a hang.
struct Channel {
  int fds[2] = {-1, -1};
  Channel() { REQUIRE(::pipe(fds) == 0); }
  ~Channel() {
    for (int fd : fds)
      if (fd >= 0) ::close(fd);
  }
  void send(char c) { (void)!::write(fds[1], &c, 1); }
  void children_started() { ::close(fds[1]), fds[1] = -1; }
  char receive() {
    char c = 0;
    while (::read(fds[0], &c, 1) < 0 && errno == EINTR) {
    }
    return c;
  }
};

} // namespace cache_test

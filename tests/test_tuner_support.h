// What the tuner's tests share: the `attnjit` binary that serves as the tune worker.
#pragma once

#include <filesystem>
#include <string>
#include <unistd.h>

namespace attnjit::test {

// The CLI next to this test binary (a GPU host gets build/portable/bin/ copied anywhere), else
// the path CMake built it at.
inline std::string cli_path() {
  char self[4096] = {};
  if (::readlink("/proc/self/exe", self, sizeof self - 1) > 0) {
    const std::filesystem::path next_to = std::filesystem::path(self).parent_path() / "attnjit";
    if (std::filesystem::exists(next_to)) return next_to.string();
  }
  return ATTNJIT_CLI_PATH;
}

} // namespace attnjit::test

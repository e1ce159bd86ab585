#pragma once
// Where a test binary keeps its files: <tmp>/refbroker-test-<pid>/, made on first use and
// removed with everything in it when the process exits normally. Helpers that hand out paths
// (rather than owning a directory they remove) put them here, so a suite run leaves nothing in
// the temporary directory. A child that the test forks and that exits does not remove it.

#include <unistd.h>

#include <filesystem>
#include <string>
#include <system_error>

namespace refbroker::testing {

inline std::filesystem::path ScratchDir() {
  struct Root {
    std::filesystem::path path =
        std::filesystem::temp_directory_path() / ("refbroker-test-" + std::to_string(getpid()));
    pid_t owner = getpid();
    Root() { std::filesystem::create_directories(path); }
    ~Root() {
      std::error_code ec;
      if (getpid() == owner) std::filesystem::remove_all(path, ec);
    }
  };
  static Root root;
  return root.path;
}

}  // namespace refbroker::testing

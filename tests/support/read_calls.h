#pragma once
// Read system calls made so far (/proc/<task>/io `syscr`): SQLite reads each page its
// connection does not hold with one pread, so a test can count the pages a store call read.

#include <filesystem>
#include <fstream>
#include <string>

namespace refbroker::testing {

// `syscr` of one /proc io file, 0 when it cannot be read.
inline double ReadCalls(const std::filesystem::path& io_file) {
  std::ifstream io(io_file);
  std::string key;
  double value = 0;
  while (io >> key >> value) {
    if (key == "syscr:") return value;
  }
  return 0;
}

// The calling thread's (a store reads on its caller's thread).
inline double OwnReadCalls() { return ReadCalls("/proc/thread-self/io"); }

// Of this process's threads named `name` (the SQLite store's writer is rb-writer).
inline double ThreadReadCalls(const std::string& name) {
  double total = 0;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string thread;
    std::getline(comm, thread);
    if (thread == name) total += ReadCalls(task.path() / "io");
  }
  return total;
}

}  // namespace refbroker::testing

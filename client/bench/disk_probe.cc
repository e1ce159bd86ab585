#include "client/bench/disk_probe.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"

namespace refbench {

absl::StatusOr<DiskLimit> ProbeDisk(const std::string& dir, double seconds) {
  std::string path = dir + "/refbench-fsync-probe.XXXXXX";
  std::vector<char> name(path.begin(), path.end());
  name.push_back('\0');
  int fd = mkstemp(name.data());
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("--data-dir: cannot create a file in ", dir, ": ", std::strerror(errno)));
  }
  unlink(name.data());  // gone when closed
  std::vector<char> record(4096, 'r');
  LatencyRecorder latency;
  size_t syncs = 0;
  auto start = Clock::now();
  auto until =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  absl::Status failed;
  while (Clock::now() < until) {
    auto t0 = Clock::now();
    if (write(fd, record.data(), record.size()) != static_cast<ssize_t>(record.size()) ||
        fdatasync(fd) != 0) {
      failed = absl::InternalError(absl::StrCat("disk probe: ", std::strerror(errno)));
      break;
    }
    latency.Add(MillisBetween(t0, Clock::now()));
    ++syncs;
  }
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  close(fd);
  if (!failed.ok()) return failed;
  return DiskLimit{static_cast<double>(syncs) / elapsed, latency.Summarize()};
}

}  // namespace refbench

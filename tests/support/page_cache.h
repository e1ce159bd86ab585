#pragma once
// How much of a file the OS page cache holds, without reading it: mincore over a mapping that
// is never touched. Used by the readahead tests and by recognition_bench.

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace refbroker::testing {

// Pages of `path` in the page cache, or -1 if it cannot tell.
inline long ResidentPages(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  off_t size = lseek(fd, 0, SEEK_END);
  if (size <= 0) {
    close(fd);
    return size == 0 ? 0 : -1;
  }
  void* map = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  if (map == MAP_FAILED) return -1;
  long page = sysconf(_SC_PAGESIZE);
  std::vector<unsigned char> vec((size + page - 1) / page);
  long resident = -1;
  if (mincore(map, size, vec.data()) == 0) {
    resident = 0;
    for (unsigned char v : vec) resident += v & 1;
  }
  munmap(map, size);
  return resident;
}

}  // namespace refbroker::testing

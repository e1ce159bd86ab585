#include "broker/storage/internal/no_readahead.h"

#include <fcntl.h>
#include <sqlite3.h>

#include <atomic>
#include <cstdlib>
#include <mutex>

namespace refbroker::storage::internal {
namespace {

using OpenCall = int (*)(const char*, int, int);

OpenCall base_open = nullptr;
std::atomic<uint64_t> advised{0};

int OpenWithoutReadahead(const char* path, int flags, int mode) {
  int fd = base_open(path, flags, mode);
  // Directories (opened to sync them) answer EINVAL or nothing; readahead is a file's matter.
  if (fd >= 0 && posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM) == 0) {
    advised.fetch_add(1, std::memory_order_relaxed);
  }
  return fd;
}

}  // namespace

void OpenFilesWithoutReadahead() {
  static std::once_flag once;
  std::call_once(once, [] {
    sqlite3_vfs* unix_vfs = sqlite3_vfs_find("unix");
    if (unix_vfs == nullptr || unix_vfs->iVersion < 3) return;  // not a POSIX build
    base_open = reinterpret_cast<OpenCall>(unix_vfs->xGetSystemCall(unix_vfs, "open"));
    if (base_open == nullptr) return;
    unix_vfs->xSetSystemCall(unix_vfs, "open",
                             reinterpret_cast<sqlite3_syscall_ptr>(&OpenWithoutReadahead));
  });
}

uint64_t FilesOpenedWithoutReadahead() { return advised.load(std::memory_order_relaxed); }

}  // namespace refbroker::storage::internal

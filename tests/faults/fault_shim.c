/* fault_shim: a storage fault injector for the broker process, loaded with LD_PRELOAD by the
 * fault tests. It wraps the system calls SQLite's unix VFS writes and syncs with; while a
 * trigger file exists in $REFBROKER_FAULT_DIR the call fails instead of reaching the disk:
 *   fsync-eio   fsync/fdatasync fail with EIO (a disk that lost the write)
 *   enospc      write/pwrite/pwrite64 fail with ENOSPC (a full disk)
 * Only files whose path contains $REFBROKER_FAULT_TARGET (e.g. "/refbroker.db": the store, its
 * WAL and shared memory) are touched, so logs and certificates keep working. Without the variables it changes nothing. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

static int triggered(const char* name) {
  const char* dir = getenv("REFBROKER_FAULT_DIR");
  if (dir == NULL) return 0;
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  struct stat st;
  return stat(path, &st) == 0;
}

/* Whether `fd` is a file whose path contains $REFBROKER_FAULT_TARGET. */
static int targeted(int fd) {
  const char* target = getenv("REFBROKER_FAULT_TARGET");
  if (target == NULL) return 0;
  char link[64], path[PATH_MAX];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, path, sizeof path - 1);
  if (n <= 0) return 0;
  path[n] = '\0';
  return strstr(path, target) != NULL;
}

typedef int (*sync_fn)(int);
typedef ssize_t (*write_fn)(int, const void*, size_t);
typedef ssize_t (*pwrite_fn)(int, const void*, size_t, off_t);
typedef ssize_t (*pwrite64_fn)(int, const void*, size_t, off64_t);

static int fail_sync(int fd) {
  if (targeted(fd) && triggered("fsync-eio")) {
    errno = EIO;
    return 1;
  }
  return 0;
}

static int fail_write(int fd) {
  if (targeted(fd) && triggered("enospc")) {
    errno = ENOSPC;
    return 1;
  }
  return 0;
}

int fsync(int fd) {
  static sync_fn real = NULL;
  if (real == NULL) real = (sync_fn)dlsym(RTLD_NEXT, "fsync");
  return fail_sync(fd) ? -1 : real(fd);
}

int fdatasync(int fd) {
  static sync_fn real = NULL;
  if (real == NULL) real = (sync_fn)dlsym(RTLD_NEXT, "fdatasync");
  return fail_sync(fd) ? -1 : real(fd);
}

ssize_t write(int fd, const void* buf, size_t count) {
  static write_fn real = NULL;
  if (real == NULL) real = (write_fn)dlsym(RTLD_NEXT, "write");
  return fail_write(fd) ? -1 : real(fd, buf, count);
}

ssize_t pwrite(int fd, const void* buf, size_t count, off_t offset) {
  static pwrite_fn real = NULL;
  if (real == NULL) real = (pwrite_fn)dlsym(RTLD_NEXT, "pwrite");
  return fail_write(fd) ? -1 : real(fd, buf, count, offset);
}

ssize_t pwrite64(int fd, const void* buf, size_t count, off64_t offset) {
  static pwrite64_fn real = NULL;
  if (real == NULL) real = (pwrite64_fn)dlsym(RTLD_NEXT, "pwrite64");
  return fail_write(fd) ? -1 : real(fd, buf, count, offset);
}

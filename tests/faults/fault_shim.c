/* fault_shim: a storage fault injector for the broker process, loaded with LD_PRELOAD by the
 * fault tests. It wraps the system calls SQLite's unix VFS writes and syncs with; while a
 * trigger file exists in $REFBROKER_FAULT_DIR the call fails instead of reaching the disk:
 *   fsync-eio   fsync/fdatasync fail with EIO (a disk that lost the write)
 *   enospc      write/pwrite/pwrite64 fail with ENOSPC (a full disk)
 * Only files whose path contains $REFBROKER_FAULT_TARGET (e.g. "/refbroker.db": the store, its
 * WAL and shared memory) are touched, so logs and certificates keep working. Without the
 * variables it changes nothing.
 *
 * Power loss: with REFBROKER_POWERLOSS_UNDO=1, every write to a targeted file (but the -shm
 * wal-index, which SQLite rebuilds) first appends the bytes it overwrites to "<file>.undo";
 * a successful fsync/fdatasync of the file empties that journal. After the broker is killed,
 * the test applies the journals backwards (tests/faults/power_loss.h): every write not
 * followed by a sync of its file is gone, exactly as after a power cut that kept nothing
 * unsynced (the worst case a disk may give). Record: u64 offset, u64 length of the write,
 * u64 file size before it, u64 bytes saved, then the saved bytes. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
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

/* Whether `fd`'s writes are journaled for the power-loss model; its path goes to `path`. */
static int journaled(int fd, char* path, size_t size) {
  const char* on = getenv("REFBROKER_POWERLOSS_UNDO");
  const char* target = getenv("REFBROKER_FAULT_TARGET");
  if (on == NULL || on[0] != '1' || target == NULL) return 0;
  char link[64];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, path, size - 8);
  if (n <= 0) return 0;
  path[n] = '\0';
  if (strstr(path, target) == NULL) return 0;
  if (n >= 4 && strcmp(path + n - 4, "-shm") == 0) return 0;
  return 1;
}

typedef ssize_t (*write_fn)(int, const void*, size_t);
static ssize_t real_write(int fd, const void* buf, size_t count) {
  static write_fn real = NULL;
  if (real == NULL) real = (write_fn)dlsym(RTLD_NEXT, "write");
  return real(fd, buf, count);
}

/* Saves what a write of `count` bytes at `offset` (or a truncation to `offset`, count = 0 and
 * truncating = 1) is about to overwrite. */
static void journal(int fd, uint64_t offset, uint64_t count, int truncating) {
  char path[PATH_MAX];
  if (!journaled(fd, path, sizeof path)) return;
  struct stat st;
  if (fstat(fd, &st) != 0) return;
  uint64_t old_size = (uint64_t)st.st_size;
  if (truncating) count = offset < old_size ? old_size - offset : 0;
  uint64_t saved = offset < old_size ? old_size - offset : 0;
  if (saved > count) saved = count;
  size_t total = 4 * sizeof(uint64_t) + (size_t)saved;
  char* record = malloc(total);
  if (record == NULL) return;
  uint64_t header[4] = {offset, count, old_size, saved};
  memcpy(record, header, sizeof header);
  if (saved > 0 && pread(fd, record + sizeof header, (size_t)saved, (off_t)offset) != (ssize_t)saved) {
    free(record);
    return;
  }
  strcat(path, ".undo");
  int u = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (u >= 0) {
    (void)real_write(u, record, total); /* one append: records never interleave */
    close(u);
  }
  free(record);
}

/* The file's writes are durable now: nothing to undo. */
static void synced(int fd) {
  char path[PATH_MAX];
  if (!journaled(fd, path, sizeof path)) return;
  strcat(path, ".undo");
  (void)truncate(path, 0);
}

typedef int (*sync_fn)(int);
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
  if (fail_sync(fd)) return -1;
  int rc = real(fd);
  if (rc == 0) synced(fd);
  return rc;
}

int fdatasync(int fd) {
  static sync_fn real = NULL;
  if (real == NULL) real = (sync_fn)dlsym(RTLD_NEXT, "fdatasync");
  if (fail_sync(fd)) return -1;
  int rc = real(fd);
  if (rc == 0) synced(fd);
  return rc;
}

ssize_t write(int fd, const void* buf, size_t count) {
  if (fail_write(fd)) return -1;
  if (getenv("REFBROKER_POWERLOSS_UNDO") != NULL) {
    int saved_errno = errno;
    off_t at = lseek(fd, 0, SEEK_CUR); /* fails on pipes and sockets: nothing to journal */
    if (at >= 0) journal(fd, (uint64_t)at, count, 0);
    errno = saved_errno;
  }
  return real_write(fd, buf, count);
}

ssize_t pwrite(int fd, const void* buf, size_t count, off_t offset) {
  static pwrite_fn real = NULL;
  if (real == NULL) real = (pwrite_fn)dlsym(RTLD_NEXT, "pwrite");
  if (fail_write(fd)) return -1;
  journal(fd, (uint64_t)offset, count, 0);
  return real(fd, buf, count, offset);
}

ssize_t pwrite64(int fd, const void* buf, size_t count, off64_t offset) {
  static pwrite64_fn real = NULL;
  if (real == NULL) real = (pwrite64_fn)dlsym(RTLD_NEXT, "pwrite64");
  if (fail_write(fd)) return -1;
  journal(fd, (uint64_t)offset, count, 0);
  return real(fd, buf, count, offset);
}

typedef int (*ftruncate_fn)(int, off_t);
typedef int (*ftruncate64_fn)(int, off64_t);

int ftruncate(int fd, off_t length) {
  static ftruncate_fn real = NULL;
  if (real == NULL) real = (ftruncate_fn)dlsym(RTLD_NEXT, "ftruncate");
  journal(fd, (uint64_t)length, 0, 1);
  return real(fd, length);
}

int ftruncate64(int fd, off64_t length) {
  static ftruncate64_fn real = NULL;
  if (real == NULL) real = (ftruncate64_fn)dlsym(RTLD_NEXT, "ftruncate64");
  journal(fd, (uint64_t)length, 0, 1);
  return real(fd, length);
}

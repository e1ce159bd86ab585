#include "broker/storage/internal/wal_write_buffer.h"

#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <vector>

namespace refbroker::storage::internal {
namespace {

constexpr char kVfsName[] = "refbroker-wal-buffer";
// The most one write may carry: SQLite's unix VFS masks a write's length with 0x1ffff (its
// seekAndWriteFd), so a longer one would be cut short and reported as a full disk. A larger commit
// goes out in writes of up to 31 frames.
constexpr size_t kLimit = 0x1ffff;

std::atomic<uint64_t> frame_writes{0};
std::atomic<uint64_t> file_writes{0};
std::atomic<uint64_t> wal_syncs{0};
std::atomic<uint64_t> sync_nanos{0};

sqlite3_vfs* base_vfs = nullptr;
sqlite3_vfs wrapper_vfs;

// What SQLite allocates for a file of this VFS: this header, then the base VFS's file.
struct File {
  sqlite3_file methods;  // must come first: SQLite sees this struct as an sqlite3_file
  sqlite3_file* real;    // the base VFS's file, right after this struct
  // WAL files only (null otherwise): bytes not yet written, which belong at offset `start`.
  std::vector<char>* pending;
  sqlite3_int64 start;
};
static_assert(sizeof(File) % 8 == 0, "the base file after it must stay aligned");

File* Of(sqlite3_file* f) { return reinterpret_cast<File*>(f); }
const sqlite3_io_methods* Real(File* f) { return f->real->pMethods; }

// Writes what the WAL file holds in memory; the buffer is empty afterwards, whatever happened.
int Flush(File* f) {
  if (f->pending == nullptr || f->pending->empty()) return SQLITE_OK;
  file_writes.fetch_add(1, std::memory_order_relaxed);
  int rc =
      Real(f)->xWrite(f->real, f->pending->data(), static_cast<int>(f->pending->size()), f->start);
  f->pending->clear();
  return rc;
}

int Close(sqlite3_file* file) {
  File* f = Of(file);
  int flushed = Flush(f);
  int rc = Real(f)->xClose(f->real);
  delete f->pending;
  f->pending = nullptr;
  return flushed != SQLITE_OK ? flushed : rc;
}

int Read(sqlite3_file* file, void* out, int amount, sqlite3_int64 offset) {
  File* f = Of(file);
  if (f->pending != nullptr && !f->pending->empty() &&
      offset < f->start + static_cast<sqlite3_int64>(f->pending->size()) &&
      offset + amount > f->start) {
    int rc = Flush(f);
    if (rc != SQLITE_OK) return rc;
  }
  return Real(f)->xRead(f->real, out, amount, offset);
}

int Write(sqlite3_file* file, const void* data, int amount, sqlite3_int64 offset) {
  File* f = Of(file);
  if (f->pending == nullptr) return Real(f)->xWrite(f->real, data, amount, offset);
  frame_writes.fetch_add(1, std::memory_order_relaxed);
  std::vector<char>& pending = *f->pending;
  bool continues = !pending.empty() &&
                   offset == f->start + static_cast<sqlite3_int64>(pending.size()) &&
                   pending.size() + amount <= kLimit;
  if (!continues) {
    int rc = Flush(f);
    if (rc != SQLITE_OK) return rc;
    f->start = offset;
  }
  const char* bytes = static_cast<const char*>(data);
  pending.insert(pending.end(), bytes, bytes + amount);
  return SQLITE_OK;
}

int Truncate(sqlite3_file* file, sqlite3_int64 size) {
  File* f = Of(file);
  int rc = Flush(f);
  return rc != SQLITE_OK ? rc : Real(f)->xTruncate(f->real, size);
}

int Sync(sqlite3_file* file, int flags) {
  File* f = Of(file);
  if (f->pending == nullptr) {
    int rc = Flush(f);
    return rc != SQLITE_OK ? rc : Real(f)->xSync(f->real, flags);
  }
  wal_syncs.fetch_add(1, std::memory_order_relaxed);
  const auto start = std::chrono::steady_clock::now();
  int rc = Flush(f);
  if (rc == SQLITE_OK) rc = Real(f)->xSync(f->real, flags);
  sync_nanos.fetch_add(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start)
          .count(),
      std::memory_order_relaxed);
  return rc;
}

int FileSize(sqlite3_file* file, sqlite3_int64* size) {
  File* f = Of(file);
  int rc = Flush(f);
  return rc != SQLITE_OK ? rc : Real(f)->xFileSize(f->real, size);
}

int Lock(sqlite3_file* file, int level) { return Real(Of(file))->xLock(Of(file)->real, level); }
int Unlock(sqlite3_file* file, int level) { return Real(Of(file))->xUnlock(Of(file)->real, level); }
int CheckReservedLock(sqlite3_file* file, int* out) {
  return Real(Of(file))->xCheckReservedLock(Of(file)->real, out);
}

int FileControl(sqlite3_file* file, int op, void* arg) {
  File* f = Of(file);
  int rc = Flush(f);
  return rc != SQLITE_OK ? rc : Real(f)->xFileControl(f->real, op, arg);
}

int SectorSize(sqlite3_file* file) { return Real(Of(file))->xSectorSize(Of(file)->real); }
int DeviceCharacteristics(sqlite3_file* file) {
  return Real(Of(file))->xDeviceCharacteristics(Of(file)->real);
}

int ShmMap(sqlite3_file* file, int page, int size, int extend, void volatile** out) {
  File* f = Of(file);
  if (Real(f)->iVersion < 2) return SQLITE_IOERR;
  return Real(f)->xShmMap(f->real, page, size, extend, out);
}
int ShmLock(sqlite3_file* file, int offset, int n, int flags) {
  File* f = Of(file);
  if (Real(f)->iVersion < 2) return SQLITE_IOERR;
  return Real(f)->xShmLock(f->real, offset, n, flags);
}
void ShmBarrier(sqlite3_file* file) {
  File* f = Of(file);
  if (Real(f)->iVersion >= 2) Real(f)->xShmBarrier(f->real);
}
int ShmUnmap(sqlite3_file* file, int delete_flag) {
  File* f = Of(file);
  if (Real(f)->iVersion < 2) return SQLITE_OK;
  return Real(f)->xShmUnmap(f->real, delete_flag);
}
int Fetch(sqlite3_file* file, sqlite3_int64 offset, int amount, void** out) {
  File* f = Of(file);
  *out = nullptr;  // "not mapped": SQLite reads instead
  if (Real(f)->iVersion < 3) return SQLITE_OK;
  return Real(f)->xFetch(f->real, offset, amount, out);
}
int Unfetch(sqlite3_file* file, sqlite3_int64 offset, void* p) {
  File* f = Of(file);
  if (Real(f)->iVersion < 3) return SQLITE_OK;
  return Real(f)->xUnfetch(f->real, offset, p);
}

const sqlite3_io_methods kMethods = {3,
                                     Close,
                                     Read,
                                     Write,
                                     Truncate,
                                     Sync,
                                     FileSize,
                                     Lock,
                                     Unlock,
                                     CheckReservedLock,
                                     FileControl,
                                     SectorSize,
                                     DeviceCharacteristics,
                                     ShmMap,
                                     ShmLock,
                                     ShmBarrier,
                                     ShmUnmap,
                                     Fetch,
                                     Unfetch};

int Open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* file, int flags, int* out_flags) {
  File* f = Of(file);
  f->methods.pMethods = nullptr;  // until the base file is open: SQLite then skips xClose
  f->real = reinterpret_cast<sqlite3_file*>(f + 1);
  f->pending = nullptr;
  f->start = 0;
  int rc = base_vfs->xOpen(base_vfs, name, f->real, flags, out_flags);
  if (rc != SQLITE_OK) {
    if (f->real->pMethods != nullptr) f->real->pMethods->xClose(f->real);
    return rc;
  }
  if ((flags & SQLITE_OPEN_WAL) != 0) f->pending = new std::vector<char>();
  f->methods.pMethods = &kMethods;
  return SQLITE_OK;
}

// The rest of the VFS is the base VFS's, called with the base VFS.
int Delete(sqlite3_vfs*, const char* name, int sync_dir) {
  return base_vfs->xDelete(base_vfs, name, sync_dir);
}
int Access(sqlite3_vfs*, const char* name, int flags, int* out) {
  return base_vfs->xAccess(base_vfs, name, flags, out);
}
int FullPathname(sqlite3_vfs*, const char* name, int size, char* out) {
  return base_vfs->xFullPathname(base_vfs, name, size, out);
}
void* DlOpen(sqlite3_vfs*, const char* name) { return base_vfs->xDlOpen(base_vfs, name); }
void DlError(sqlite3_vfs*, int size, char* out) { base_vfs->xDlError(base_vfs, size, out); }
void (*DlSym(sqlite3_vfs*, void* handle, const char* symbol))(void) {
  return base_vfs->xDlSym(base_vfs, handle, symbol);
}
void DlClose(sqlite3_vfs*, void* handle) { base_vfs->xDlClose(base_vfs, handle); }
int Randomness(sqlite3_vfs*, int size, char* out) {
  return base_vfs->xRandomness(base_vfs, size, out);
}
int Sleep(sqlite3_vfs*, int micros) { return base_vfs->xSleep(base_vfs, micros); }
int CurrentTime(sqlite3_vfs*, double* out) { return base_vfs->xCurrentTime(base_vfs, out); }
int GetLastError(sqlite3_vfs*, int size, char* out) {
  return base_vfs->xGetLastError(base_vfs, size, out);
}
int CurrentTimeInt64(sqlite3_vfs*, sqlite3_int64* out) {
  return base_vfs->xCurrentTimeInt64(base_vfs, out);
}

}  // namespace

const char* RegisterWalWriteBuffer() {
  static std::once_flag once;
  std::call_once(once, [] {
    base_vfs = sqlite3_vfs_find(nullptr);
    std::memset(&wrapper_vfs, 0, sizeof wrapper_vfs);
    wrapper_vfs.iVersion = 2;
    wrapper_vfs.szOsFile = static_cast<int>(sizeof(File)) + base_vfs->szOsFile;
    wrapper_vfs.mxPathname = base_vfs->mxPathname;
    wrapper_vfs.zName = kVfsName;
    wrapper_vfs.xOpen = Open;
    wrapper_vfs.xDelete = Delete;
    wrapper_vfs.xAccess = Access;
    wrapper_vfs.xFullPathname = FullPathname;
    wrapper_vfs.xDlOpen = DlOpen;
    wrapper_vfs.xDlError = DlError;
    wrapper_vfs.xDlSym = DlSym;
    wrapper_vfs.xDlClose = DlClose;
    wrapper_vfs.xRandomness = Randomness;
    wrapper_vfs.xSleep = Sleep;
    wrapper_vfs.xCurrentTime = CurrentTime;
    wrapper_vfs.xGetLastError = GetLastError;
    wrapper_vfs.xCurrentTimeInt64 = base_vfs->iVersion >= 2 ? CurrentTimeInt64 : nullptr;
    sqlite3_vfs_register(&wrapper_vfs, /*makeDflt=*/0);
  });
  return kVfsName;
}

WalWriteStats GetWalWriteStats() {
  return {frame_writes.load(std::memory_order_relaxed), file_writes.load(std::memory_order_relaxed),
          wal_syncs.load(std::memory_order_relaxed), sync_nanos.load(std::memory_order_relaxed)};
}

}  // namespace refbroker::storage::internal

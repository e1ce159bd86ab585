#pragma once
// WalWriteBuffer: an SQLite VFS that gathers the frames a commit appends to the WAL into one
// write. SQLite writes each WAL frame with two system calls (its 24-byte header, then the page),
// so a group commit of 50 pages made 100 `pwrite`s before its fdatasync; on this 2-core machine
// those cost ~270 µs against ~20 µs for the same bytes in one write (a C loop in the data
// directory, 50 frames: 1,038 µs per commit with its fdatasync against 688 µs).
//
// The VFS wraps the default one (unix) and forwards every call unchanged, except on files SQLite
// opens as a WAL: there a write that continues the previous one is appended to a buffer in
// memory, and the buffer goes to the file, in one write, before anything that needs it there:
// xSync (every commit: the store runs synchronous=FULL), a read that overlaps it, xFileSize,
// xTruncate, a file control, xClose, a write elsewhere, or when the next write would take it past
// 128 KiB (the most the unix VFS writes at once).
//
// Why that keeps every guarantee: a commit is acknowledged only after xSync returned, and xSync
// writes the buffer first, so what is synced is what was written; a write that fails then
// fails the sync and so the commit (SQLite rolls it back; ENOSPC is still SQLITE_FULL). Other
// connections read only frames of commits the wal-index has published, and SQLite publishes a
// commit after its sync. That last point needs synchronous=FULL on the writing connection
// (NORMAL publishes frames without syncing them): every connection of the stores sets it.
//
// Db::Open opens every connection through this VFS (RegisterWalWriteBuffer is idempotent).

#include <cstdint>

namespace refbroker::storage::internal {

// Registers the VFS (once per process; not the default VFS) and returns its name for
// sqlite3_open_v2.
const char* RegisterWalWriteBuffer();

// What the WAL files of this process saw through the VFS, for tests and benchmarks.
struct WalWriteStats {
  uint64_t frame_writes = 0;  // writes SQLite asked for on WAL files
  uint64_t file_writes = 0;   // writes that reached the files
  uint64_t syncs = 0;         // syncs of WAL files (one per commit)
  uint64_t sync_nanos = 0;  // wall time in them: the commit's buffered frames written, then synced
};
WalWriteStats GetWalWriteStats();

}  // namespace refbroker::storage::internal

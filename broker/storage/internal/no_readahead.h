#pragma once
// NoReadahead: every file SQLite opens in this process (the database, its WAL, temporary files)
// is opened with POSIX_FADV_RANDOM, which turns the kernel's readahead off for it.
//
// Why: a B-tree store reads and writes 4 KiB pages at random places. With readahead the kernel
// reads around each miss and, on a sequential read, ever larger windows; on kernels whose ext4
// caches files in large folios (6.16 and later; this project's CI machine runs 6.18) those
// reads build folios of up to 2 MiB. A checkpoint that then writes one 4 KiB page marks the
// whole folio dirty, and writeback writes all of it. Measured on a 9 GB store (recognition_bench,
// 10+ million results): after `refbroker backup` read it from a cold cache, 8.3 GB of it sat in
// 2 MiB folios (FileHugePages) and the next publishes cost the writer 117-134 µs of CPU each and
// the checkpointer 54 µs (5,085 results/s); with the backup reading without readahead, no huge
// folios, 68 and 12 µs (8,305/s). (A `cat` of the live file does the same, and nothing in the
// broker can undo it: OPERATIONS.md says not to.) The broker's own reads (the integrity check,
// the writer's misses) built no huge folios in the runs measured. The price: a backup from a
// cold cache reads page by page (9 GB: 4 min 32 s instead of 49 s).
//
// How: the unix VFS lets a program replace the system calls it makes (xSetSystemCall); "open"
// is replaced by open() followed by posix_fadvise. It is the one VFS every connection uses
// underneath WalWriteBuffer; Db::Open and the backup (sqlite_backup.cc, which opens its own
// connections) call this before they open anything.

#include <cstdint>

namespace refbroker::storage::internal {

// Installs the replacement once per process; later calls do nothing.
void OpenFilesWithoutReadahead();

// How many files have been opened with readahead off, for tests.
uint64_t FilesOpenedWithoutReadahead();

}  // namespace refbroker::storage::internal

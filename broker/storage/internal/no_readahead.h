#pragma once
// NoReadahead: every file SQLite opens in this process (the database, its WAL, temporary files)
// is opened with POSIX_FADV_RANDOM, which turns the kernel's readahead off for it.
//
// Why: a B-tree store reads and writes 4 KiB pages at random places. With readahead the kernel
// reads around each miss, and on kernels whose ext4 caches files in large folios (6.16 and
// later; this project's CI machine runs 6.18) those reads build folios of up to 2 MiB. A
// checkpoint that then writes one 4 KiB page marks the whole folio dirty, and writeback writes
// all of it: on a 6 GB store (recognition_bench, 10 million results) /proc/meminfo showed 4.4 GB
// of FileHugePages, "Dirty" swinging between 0.3 and 1.8 GB within a second, and the writer
// spending 42 µs of CPU per published result in fdatasync (34 µs of it in ext4 walking the
// buffers of dirty folios) against 8 µs on a small store. With readahead off the pages stay
// 4 KiB folios: FileHugePages 0, fdatasync 13 µs per result, and the same store published
// 6,500-7,200 results/s instead of 5,400-5,900. Sequential readers of the store (the integrity
// check, a backup) read from disk page by page when the cache is cold; that is the price.
//
// How: the unix VFS lets a program replace the system calls it makes (xSetSystemCall); "open"
// is replaced by open() followed by posix_fadvise. It is the one VFS every connection uses
// underneath WalWriteBuffer, so Db::Open calls this before it opens anything.

#include <cstdint>

namespace refbroker::storage::internal {

// Installs the replacement once per process; later calls do nothing.
void OpenFilesWithoutReadahead();

// How many files have been opened with readahead off, for tests.
uint64_t FilesOpenedWithoutReadahead();

}  // namespace refbroker::storage::internal

// A look at a database file before SQLite opens it, so that a zero-byte, truncated or
// random-byte file is refused with a message naming the problem, and nothing (not even a -wal
// file) is created next to a file that is not ours.
#pragma once

#include <string>

namespace attnjit::cache {

enum class FileState {
  missing, // no file at the path
  empty,   // zero bytes: what SQLite itself creates before the first write
  sqlite,  // starts with a plausible SQLite header
};

// Before opening: throws Error(cache) naming the file when it cannot be a SQLite database: a
// directory, an unreadable file, fewer bytes than the header, or a foreign header. Only the first
// 100 bytes are judged, which writers change in place, so this needs no lock.
FileState inspect_file(const std::string& path);

// After opening, under a read lock (a writer in the middle of a commit writes page 1 before the
// pages that follow it): throws when the file is not a whole number of pages, or shorter than its
// header's page count. Skipped while a -wal file could hold the missing pages.
void check_file_size(const std::string& path);

} // namespace attnjit::cache

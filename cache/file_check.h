// A look at a database file before SQLite opens it, so that a zero-byte, truncated or
// random-byte file is refused with a message naming the problem, and nothing (not even a -wal
// file) is created next to a file that is not ours.
//
// The file is read only through SQLite's own file objects, never through a descriptor of ours:
// SQLite's locks are POSIX record locks, and closing any descriptor of the file drops all of the
// process's locks on it, those of every other connection in the process included. A process
// whose shared lock is gone lets another process's closing connection think itself the last,
// checkpoint and delete the -wal file under it; its later commits then go to the deleted file
// and are lost (a released claim came back that way). SQLite's own close keeps a descriptor open
// while the process holds locks on the file.
#pragma once

#include "cache/sqlite.h"

#include <string>

namespace attnjit::cache {

enum class FileState {
  missing, // no file at the path
  empty,   // zero bytes: what SQLite itself creates before the first write
  sqlite,  // starts with a plausible SQLite header
};

// Before opening: throws Error(cache) naming the file when it cannot be a SQLite database: a
// directory, an unreadable file, fewer bytes than the header, or a foreign header. Only the first
// 100 bytes are judged, which writers change in place, so this needs no lock. They are read
// through a read-only SQLite connection that reads nothing else and creates nothing.
FileState inspect_file(const std::string& path);

// After opening, under a read lock (a writer in the middle of a commit writes page 1 before the
// pages that follow it): throws when the file is not a whole number of pages, or shorter than its
// header's page count. Skipped while a -wal file could hold the missing pages. Reads through the
// connection's own file.
void check_file_size(sql::Connection& conn);

} // namespace attnjit::cache

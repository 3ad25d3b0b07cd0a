// file.h - the small file-system questions the loaders ask: is a path a
// regular file or a directory, its directory, and a bounded read of a small
// file (configs, templates). Large files are mapped instead (mmap.h).
#pragma once

#include <cstddef>
#include <string>

namespace paca {

bool is_regular_file(const std::string& path);
bool is_directory(const std::string& path);
// "a/b/c.json" -> "a/b"; a name without '/' -> ".".
std::string dir_of(const std::string& path);
// The whole file; Error(io) when it cannot be opened, Error(format) naming
// the path as soon as it exceeds limit bytes (never read past limit + 64 KiB).
std::string read_text_file(const std::string& path, size_t limit);

}  // namespace paca

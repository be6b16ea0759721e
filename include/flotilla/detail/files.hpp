#pragma once
// Whole-file reads and atomic replacement: written to a temporary file beside the target,
// flushed to disk, renamed over it, and the directory flushed, so a crash leaves either the old
// file or the new.

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>   // open: the directory, to make the rename itself durable
#include <unistd.h>  // fsync: rename alone does not promise the bytes reached the disk
#define FLOTILLA_HAVE_FSYNC 1
#endif

#include "flotilla/detail/config.hpp"
#include "flotilla/errors.hpp"

namespace flotilla {

namespace detail {
// Flushes a file's (or directory's) contents to the disk; true on success. Where the system has
// no fsync, a flush of the C stream is all there is.
FLOTILLA_DECL bool sync_to_disk([[maybe_unused]] std::FILE* file);
FLOTILLA_DECL void sync_directory([[maybe_unused]] const std::filesystem::path& directory);
}  // namespace detail

/// Replaces `path` with `bytes` atomically: a temporary file beside it is written and flushed
/// to disk, renamed over it, and the directory flushed so the rename itself survives a crash.
/// @throws file_error naming the file on any failure.
FLOTILLA_DECL void write_file_atomically(const std::filesystem::path& path, std::span<const std::byte> bytes);

/// The bytes of the file at `path`. @throws file_error naming the file if it cannot be read.
template <class Bytes = std::vector<std::byte>>
[[nodiscard]] Bytes read_file(const std::filesystem::path& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (!file) throw file_error(errno, std::generic_category(), "cannot open " + path.string());
  Bytes bytes;
  std::byte chunk[1 << 16];
  std::size_t got = 0;
  while ((got = std::fread(chunk, 1, sizeof chunk, file)) > 0) bytes.insert(bytes.end(), chunk, chunk + got);
  const bool failed = std::ferror(file) != 0;
  std::fclose(file);
  if (failed) throw file_error(EIO, std::generic_category(), "cannot read " + path.string());
  return bytes;
}

#if FLOTILLA_HEADER_DEFINITIONS
namespace detail {
FLOTILLA_DECL bool sync_to_disk([[maybe_unused]] std::FILE* file) {
#ifdef FLOTILLA_HAVE_FSYNC
  return ::fsync(::fileno(file)) == 0;
#else
  return true;
#endif
}

FLOTILLA_DECL void sync_directory([[maybe_unused]] const std::filesystem::path& directory) {
#ifdef FLOTILLA_HAVE_FSYNC
  const int handle = ::open(directory.empty() ? "." : directory.c_str(), O_RDONLY);
  if (handle < 0) return;  // the rename happened; only its durability is not confirmed
  (void)::fsync(handle);
  ::close(handle);
#endif
}
}  // namespace detail
FLOTILLA_DECL void write_file_atomically(const std::filesystem::path& path, std::span<const std::byte> bytes) {
  const auto temporary = std::filesystem::path(path).concat(".tmp");
  const auto fail = [&](const char* what) {
    const int error = errno;
    std::remove(temporary.c_str());
    throw file_error(error, std::generic_category(), std::string(what) + " " + temporary.string());
  };
  std::FILE* file = std::fopen(temporary.c_str(), "wb");
  if (!file) fail("cannot create");
  const bool written = std::fwrite(bytes.data(), 1, bytes.size(), file) == bytes.size() && std::fflush(file) == 0 &&
                       detail::sync_to_disk(file);
  if (std::fclose(file) != 0 || !written) fail("cannot write");
  std::error_code renamed;
  std::filesystem::rename(temporary, path, renamed);
  if (renamed) {
    std::remove(temporary.c_str());
    throw file_error(renamed, "cannot rename " + temporary.string() + " to " + path.string());
  }
  detail::sync_directory(path.parent_path());
}
#endif  // FLOTILLA_HEADER_DEFINITIONS

}  // namespace flotilla

#pragma once
// The wire form of a coordinator's checkpoint and the file handling around it: the round
// number, the selection generator, the global parameters, the rule's state carried between
// rounds, and the whole history, in Flotilla's serialization format (envelope content
// "checkpoint"). Files are replaced atomically: written to a temporary file beside the target,
// flushed to disk, then renamed over it (and the directory flushed), so a crash leaves either the
// old checkpoint or the new.

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>   // open: the directory, to make the rename itself durable
#include <unistd.h>  // fsync: rename alone does not promise the bytes reached the disk
#define FLOTILLA_HAVE_FSYNC 1
#endif

#include "flotilla/errors.hpp"
#include "flotilla/history.hpp"
#include "flotilla/serialization.hpp"

namespace flotilla {

/// Bounds for reading a checkpoint: its own file, but checked like any other input.
inline constexpr decode_limits checkpoint_limits{.max_scalars = std::uint64_t{1} << 34, .max_tensors = 1u << 20,
                                                 .max_rank = 8, .max_string = 1u << 24, .max_entries = 1u << 24};

/// A rule whose state outlives a round (a server optimizer's moments) says how to write and
/// read it; rules that forget everything at start() need neither.
template <class Rule>
concept CheckpointableRule = requires(const Rule& rule, Rule& target, wire_writer& out, wire_reader& in) {
  rule.save_state(out);
  target.load_state(in);
};

namespace detail {

inline void write_ids(wire_writer& out, const std::vector<learner_id>& ids) {
  out.write(static_cast<std::uint64_t>(ids.size()));
  for (auto id : ids) out.write(id);
}
inline std::vector<learner_id> read_ids(wire_reader& in) {
  std::vector<learner_id> ids(in.read_count(in.limits().max_entries, sizeof(learner_id), "learner count"));
  for (auto& id : ids) id = in.read<learner_id>("learner id");
  return ids;
}

inline void write_history(wire_writer& out, const history& past) {
  out.write_string(past.stop_reason);
  out.write(static_cast<std::uint64_t>(past.rounds.size()));
  for (const auto& r : past.rounds) {
    out.write(r.round);
    out.write(static_cast<std::uint8_t>(r.status));
    out.write_string(r.note);
    write_ids(out, r.selected);
    write_ids(out, r.participants);
    write_ids(out, r.evaluated);
    out.write(static_cast<std::uint64_t>(r.rejections.size()));
    for (const auto& rejected : r.rejections) {
      out.write(rejected.learner);
      out.write(static_cast<std::uint8_t>(rejected.kind));
      out.write(rejected.round);
      out.write_string(rejected.reason);
    }
    out.write(r.examples);
    write_map(out, r.fit_metrics);
    write_map(out, r.federated_metrics);
    write_map(out, r.central_metrics);
    for (double seconds : {r.fit_seconds, r.evaluate_seconds, r.round_seconds, r.elapsed_seconds}) out.write(seconds);
  }
}

inline history read_history(wire_reader& in) {
  history past;
  past.stop_reason = in.read_string("stop reason");
  // A round takes at least its fixed fields: 8 + 1 + 4 + 3 * 8 + 8 + 8 + 3 * 8 + 4 * 8 bytes.
  past.rounds.resize(in.read_count(in.limits().max_entries, 109, "round count"));
  for (auto& r : past.rounds) {
    r.round = in.read<std::uint64_t>("round");
    const auto status = in.read<std::uint8_t>("round status");
    if (status > static_cast<std::uint8_t>(round_status::discarded))
      throw decode_error("unknown round status " + std::to_string(status));
    r.status = static_cast<round_status>(status);
    r.note = in.read_string("round note");
    r.selected = read_ids(in);
    r.participants = read_ids(in);
    r.evaluated = read_ids(in);
    r.rejections.resize(in.read_count(in.limits().max_entries, 8 + 1 + 8 + 4, "rejection count"));
    for (auto& rejected : r.rejections) {
      rejected.learner = in.read<learner_id>("learner id");
      rejected.kind = read_kind(in);
      rejected.round = in.read<std::uint64_t>("round");
      rejected.reason = in.read_string("reason");
    }
    r.examples = in.read<std::int64_t>("examples");
    r.fit_metrics = read_map(in, "fit metric count");
    r.federated_metrics = read_map(in, "federated metric count");
    r.central_metrics = read_map(in, "central metric count");
    for (double* seconds : {&r.fit_seconds, &r.evaluate_seconds, &r.round_seconds, &r.elapsed_seconds})
      *seconds = in.read<double>("duration");
  }
  return past;
}

}  // namespace detail

namespace detail {
// Flushes a file's (or directory's) contents to the disk; true on success. Where the system has
// no fsync, a flush of the C stream is all there is.
inline bool sync_to_disk([[maybe_unused]] std::FILE* file) {
#ifdef FLOTILLA_HAVE_FSYNC
  return ::fsync(::fileno(file)) == 0;
#else
  return true;
#endif
}
inline void sync_directory([[maybe_unused]] const std::filesystem::path& directory) {
#ifdef FLOTILLA_HAVE_FSYNC
  const int handle = ::open(directory.empty() ? "." : directory.c_str(), O_RDONLY);
  if (handle < 0) return;  // the rename happened; only its durability is not confirmed
  (void)::fsync(handle);
  ::close(handle);
#endif
}
}  // namespace detail

/// Replaces `path` with `bytes` atomically: a temporary file beside it is written and flushed
/// to disk, renamed over it, and the directory flushed so the rename itself survives a crash.
/// @throws std::system_error naming the file on any failure.
inline void write_file_atomically(const std::filesystem::path& path, std::span<const std::byte> bytes) {
  const auto temporary = std::filesystem::path(path).concat(".tmp");
  const auto fail = [&](const char* what) {
    const int error = errno;
    std::remove(temporary.c_str());
    throw std::system_error(error, std::generic_category(), std::string(what) + " " + temporary.string());
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
    throw std::system_error(renamed, "cannot rename " + temporary.string() + " to " + path.string());
  }
  detail::sync_directory(path.parent_path());
}

/// The bytes of the file at `path`. @throws std::system_error naming the file if it cannot be read.
[[nodiscard]] inline byte_buffer read_file(const std::filesystem::path& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (!file) throw std::system_error(errno, std::generic_category(), "cannot open " + path.string());
  byte_buffer bytes;
  std::byte chunk[1 << 16];
  std::size_t got = 0;
  while ((got = std::fread(chunk, 1, sizeof chunk, file)) > 0) bytes.insert(bytes.end(), chunk, chunk + got);
  const bool failed = std::ferror(file) != 0;
  std::fclose(file);
  if (failed) throw std::system_error(EIO, std::generic_category(), "cannot read " + path.string());
  return bytes;
}

}  // namespace flotilla

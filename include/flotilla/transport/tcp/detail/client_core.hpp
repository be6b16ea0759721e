#pragma once
// The learner side's network engine, written once for every learner type: dial, register,
// read frames, keep the heartbeat, reconnect with backoff, run each task on a worker thread and
// send its answer. What depends on the learner (its id, decoding a task for its parameter type,
// doing the task and encoding the reply) comes through `served_learner`, which
// learner_client<L> implements. Its definitions (impl/client_core.ipp, all the Asio code) are
// compiled once in flotilla::compiled, or included here in the header-only mode.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "flotilla/detail/config.hpp"
#include "flotilla/fwd.hpp"
#include "flotilla/transport/tcp/log.hpp"
#include "flotilla/transport/tcp/protocol.hpp"

namespace asio::ssl {
class context;  // Asio's TLS context: only a pointer to it appears here
}

namespace flotilla::tcp {

struct client_options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  std::string token{};  ///< proves this learner's identity (never sent itself); empty if none is needed
  /// Largest task payload accepted, in bytes, for learners that do not expose their model. A
  /// learner with `model().parameters()` (flotilla::learner) accepts only tasks for its own
  /// model's layout, checked from the first chunk, whatever this says. Also the most bytes queued
  /// for the aggregator beyond the frame being written.
  std::uint64_t max_payload = std::uint64_t{1} << 32;
  std::chrono::milliseconds heartbeat_interval{1000};
  std::chrono::milliseconds heartbeat_timeout{5000};
  std::chrono::milliseconds write_timeout{10000};  ///< an aggregator that takes nothing this long is dropped
  std::uint64_t min_receive_rate = 1024;           ///< bytes/s a frame must average once it took a heartbeat timeout
  std::chrono::milliseconds first_backoff{100};  ///< wait after the first failed attempt, doubled each time
  std::chrono::milliseconds max_backoff{5000};
  std::shared_ptr<asio::ssl::context> tls{};  ///< null: plain TCP (see make_learner_tls)
  std::string tls_server_name{};              ///< name the aggregator's certificate must carry (default: host)
  /// Attempts in a row that fail for a cause retrying cannot fix (a certificate refused or
  /// unverifiable, TLS on one side only, another protocol version) before run() gives up and
  /// returns that cause; 0 retries forever. Other failures (no aggregator yet, a dropped
  /// connection) are always retried.
  std::uint32_t give_up_after = 3;
  /// What this learner reports when it joins (at most 32 entries, names and text up to 256
  /// bytes). Empty: the learner's own properties(), when it has them.
  settings properties{};
  log_function log = log_to_stderr;
};

/// How a learner client's run ended.
enum class client_exit : std::uint8_t {
  goodbye,                 ///< the aggregator ended the run
  refused,                 ///< the aggregator refused this learner's identity (unknown id or wrong token)
  stopped,                 ///< stop() was called
  certificate_rejected,    ///< the aggregator refused this learner's certificate, or it sent none
  certificate_unverified,  ///< this learner could not verify the aggregator's certificate
  tls_mismatch,            ///< one side speaks TLS and the other plain TCP
  version_mismatch,        ///< the aggregator speaks another protocol version
};

/// "goodbye", "refused", ... as in the enumeration.
[[nodiscard]] inline const char* to_string(client_exit exit) {
  switch (exit) {
    case client_exit::goodbye: return "goodbye";
    case client_exit::refused: return "refused";
    case client_exit::stopped: return "stopped";
    case client_exit::certificate_rejected: return "certificate_rejected";
    case client_exit::certificate_unverified: return "certificate_unverified";
    case client_exit::tls_mismatch: return "tls_mismatch";
    case client_exit::version_mismatch: return "version_mismatch";
  }
  return "unknown";
}

namespace detail {

/// A task taken off the wire, ready to run on the worker thread.
struct received_task {
  std::uint64_t round = 0;
  task_kind kind = task_kind::fit;
  /// Does the task and returns the frame to send: a reply, or a failure with the reason.
  std::function<outgoing_frame()> run;
};

/// What the engine needs of the learner it serves. Decoding happens on the network thread, one
/// task at a time: start_task or whole_task, then take_task.
class served_learner {
 public:
  virtual ~served_learner() = default;
  [[nodiscard]] virtual learner_id id() const = 0;
  /// The largest task payload this learner accepts, given the configured maximum.
  [[nodiscard]] virtual std::uint64_t task_limit(std::uint64_t max_payload) const = 0;
  /// Decodes a task from its first bytes; returns where the rest of its bytes go, or nothing when
  /// it needs them all (then whole_task). @throws decode_error or protocol_error.
  virtual std::optional<std::span<std::byte>> start_task(std::span<const std::byte> first, std::uint64_t total) = 0;
  /// Decodes a whole task. @throws decode_error or protocol_error.
  virtual void whole_task(std::span<const std::byte> payload) = 0;
  /// The task last decoded, as work for the worker thread.
  virtual received_task take_task() = 0;
};

/// The engine. Not copyable; `run` blocks until the run ends.
class client_core {
 public:
  FLOTILLA_DECL client_core(served_learner& learner, client_options options);
  client_core(const client_core&) = delete;
  client_core& operator=(const client_core&) = delete;
  FLOTILLA_DECL ~client_core();

  FLOTILLA_DECL client_exit run();
  FLOTILLA_DECL void stop();
  [[nodiscard]] const client_options& options() const { return options_; }

 private:
  struct state;  // Asio's objects, in impl/client_core.ipp
  served_learner& learner_;
  client_options options_;
  std::unique_ptr<state> state_;
};

}  // namespace detail
}  // namespace flotilla::tcp

#if FLOTILLA_HEADER_DEFINITIONS
#include "flotilla/transport/tcp/impl/client_core.ipp"
#endif

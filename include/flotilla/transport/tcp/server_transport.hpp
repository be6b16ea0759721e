#pragma once
// The aggregator side of the TCP transport: learners dial in (they are the ones behind NAT),
// answer a challenge to register, and receive tasks. Models flotilla::Transport, so the
// coordinator runs over it unchanged. One io_context thread serves every connection with
// coroutines; a reply's parameters are received straight into place and handed to the
// coordinator as each completes, so aggregation overlaps with receiving the next reply.
//
// Every byte from the network is hostile until proven otherwise, and everything a peer can make
// the aggregator spend is bounded by these options, never by what the peer announces: it refuses
// to listen beyond loopback unauthenticated; caps connections that have not authenticated, in
// total and per address; sizes a reply by the task pending for its learner; bounds the bytes
// waiting for the coordinator and stops reading sockets while they are full; drops messages no
// task asked for; and backs off addresses that fail to authenticate. The README's Security
// section gives the threat model.

#include "flotilla/transport/tcp/detail/asio_config.hpp"  // first: coroutine support under Clang

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/ssl/stream.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <openssl/ssl.h>   // the verify mode and the peer certificate of a TLS connection
#include <openssl/x509v3.h>  // the certificate's subject alternative names

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "flotilla/detail/config.hpp"
#include "flotilla/arithmetic.hpp"
#include "flotilla/detail/text.hpp"
#include "flotilla/concepts/transport.hpp"
#include "flotilla/detail/inbox.hpp"
#include "flotilla/errors.hpp"
#include "flotilla/messages.hpp"
#include "flotilla/wire/messages.hpp"
#include "flotilla/transport/tcp/authentication.hpp"
#include "flotilla/transport/tcp/detail/connection.hpp"
#include "flotilla/transport/tcp/frame.hpp"
#include "flotilla/transport/tcp/log.hpp"
#include "flotilla/transport/tcp/protocol.hpp"

namespace flotilla::tcp {

struct server_options {
  std::string address = "127.0.0.1";  ///< interface to listen on; "0.0.0.0" for every IPv4 interface
  std::uint16_t port = 0;             ///< 0 picks a free port; see server_transport::port()
  /// Ceiling on any frame's payload. A reply is bounded further by its learner's pending task
  /// (that model's size plus a small head), other frames by their type. Also the most bytes
  /// queued for one learner beyond the frame being written.
  std::uint64_t max_payload = std::uint64_t{1} << 32;
  std::chrono::milliseconds heartbeat_interval{1000};
  std::chrono::milliseconds heartbeat_timeout{5000};   ///< silence after which a learner is dropped
  std::chrono::milliseconds handshake_timeout{5000};   ///< time to complete TLS and answer the challenge
  std::chrono::milliseconds write_timeout{10000};      ///< a learner whose socket takes nothing this long is dropped
  std::uint64_t min_receive_rate = 1024;               ///< bytes/s a frame must average once it took a heartbeat timeout
  /// When not empty, only these learners, each proving its token (challenge-response).
  std::map<learner_id, std::string> tokens{};
  /// With mutual TLS: the name (subject CN or a DNS subject alternative name) each learner's
  /// certificate must carry. When not empty, a learner not listed, or presenting another
  /// certificate, is refused.
  std::map<learner_id, std::string> certificate_names{};
  std::shared_ptr<asio::ssl::context> tls{};  ///< null: plain TCP (see make_server_tls)
  /// Listening beyond loopback with neither tokens nor client certificates lets anyone who can
  /// reach the port join the federation; the constructor refuses it unless this is set.
  bool insecure_allow_unauthenticated_network = false;
  std::size_t max_unauthenticated = 64;             ///< connections not yet registered, in total
  std::size_t max_unauthenticated_per_address = 8;  ///< the same, from one IP address
  /// Bytes of replies waiting for the coordinator; sockets are not read while it is full (one
  /// reply is always let through, however large).
  std::uint64_t max_waiting_bytes = std::uint64_t{1} << 30;
  std::size_t max_unsolicited = 8;  ///< failures matching no task a learner may send before it is dropped
  /// Wait imposed on an address after it fails to authenticate, doubled per further failure up
  /// to a minute; connections from it meanwhile are closed at once.
  std::chrono::milliseconds failure_backoff{1000};
  log_function log = log_to_stderr;
};

/// What a server transport holds and has turned away, for monitoring and for tests.
struct server_statistics {
  std::int64_t buffered_bytes = 0;       ///< receive buffers, replies being received or waiting
  std::int64_t peak_buffered_bytes = 0;  ///< the most ever at once
  std::int64_t waiting_bytes = 0;        ///< replies received and not yet taken by the coordinator
  std::size_t unauthenticated_connections = 0;
  std::uint64_t connections_turned_away = 0;   ///< over a limit or backing off, closed at accept
  std::uint64_t authentication_failures = 0;
  std::uint64_t unsolicited_messages = 0;      ///< failures that matched no task, dropped
};

namespace detail {

/// Bytes counted on a meter for as long as this object lives.
class metered {
 public:
  metered() = default;
  metered(std::shared_ptr<byte_meter> meter, std::int64_t bytes) : meter_(std::move(meter)), bytes_(bytes) {
    if (meter_) meter_->add(bytes_);
  }
  metered(metered&& other) noexcept : meter_(std::move(other.meter_)), bytes_(std::exchange(other.bytes_, 0)) {}
  metered& operator=(metered&& other) noexcept {
    if (this != &other) {
      release();
      meter_ = std::move(other.meter_);
      bytes_ = std::exchange(other.bytes_, 0);
    }
    return *this;
  }
  ~metered() { release(); }

 private:
  void release() {
    if (meter_) meter_->remove(bytes_);
    meter_.reset();
  }
  std::shared_ptr<byte_meter> meter_;
  std::int64_t bytes_ = 0;
};

/// At most ten lines a second for each kind of event, then how many were left out: a flood of
/// bad connections cannot flood the log.
class log_limiter {
 public:
  /// Whether to log now; `line` gains the count of lines suppressed before it.
  bool allow(const std::string& kind, std::string& line) {
    auto& entry = kinds_[kind];
    const auto now = clock::now();
    if (now - entry.window >= std::chrono::seconds(1)) {
      entry.window = now;
      entry.logged = 0;
    }
    if (entry.logged >= 10) {
      ++entry.suppressed;
      return false;
    }
    if (entry.suppressed > 0) line += " (" + std::to_string(entry.suppressed) + " similar lines suppressed before)";
    entry.suppressed = 0;
    ++entry.logged;
    return true;
  }

 private:
  struct state {
    clock::time_point window{};
    std::uint32_t logged = 0;
    std::uint64_t suppressed = 0;
  };
  std::map<std::string, state> kinds_;
};

/// The names a certificate vouches for: its subject's common name and its DNS alternative names.
inline std::vector<std::string> certificate_names_of(SSL* ssl) {
  std::vector<std::string> names;
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
  X509* certificate = SSL_get1_peer_certificate(ssl);
#else
  X509* certificate = SSL_get_peer_certificate(ssl);
#endif
  if (!certificate) return names;
  char common_name[256] = {};
  if (X509_NAME_get_text_by_NID(X509_get_subject_name(certificate), NID_commonName, common_name,
                                sizeof common_name) > 0)
    names.emplace_back(common_name);
  auto* alternatives =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(certificate, NID_subject_alt_name, nullptr, nullptr));
  if (alternatives) {
    for (int i = 0; i < sk_GENERAL_NAME_num(alternatives); ++i) {
      const GENERAL_NAME* name = sk_GENERAL_NAME_value(alternatives, i);
      if (name->type == GEN_DNS)
        names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(name->d.dNSName)),
                           std::size_t(ASN1_STRING_length(name->d.dNSName)));
    }
    GENERAL_NAMES_free(alternatives);
  }
  X509_free(certificate);
  return names;
}

/// Whether a TLS context demands a certificate from every client (mutual TLS).
inline bool requires_client_certificates(const std::shared_ptr<asio::ssl::context>& tls) {
  return tls && (SSL_CTX_get_verify_mode(tls->native_handle()) & SSL_VERIFY_FAIL_IF_NO_PEER_CERT) != 0;
}

}  // namespace detail

/// @brief `Transport` whose learners are processes that connected over TCP (optionally TLS).
template <class P>
class server_transport {
  static_assert(flotilla::detail::explain_wire_codable<P>());  // in the body: an error names what to write

 public:
  using parameters_type = P;

  /// Binds and starts serving. @throws configuration_error when asked to listen beyond loopback
  /// with neither tokens nor client certificates (see insecure_allow_unauthenticated_network),
  /// std::system_error if the address cannot be bound.
  explicit server_transport(server_options options)
      : options_(checked(std::move(options))),
        acceptor_(io_, asio::ip::tcp::endpoint(asio::ip::make_address(options_.address), options_.port)) {
    initialize_openssl();
    if (!options_.tokens.empty() && !options_.tls)
      log("warning: tokens without TLS: the proof of each token is safe to send in clear, but the "
          "parameters are not encrypted, and a registered connection can be taken over on the path");
    asio::co_spawn(io_, accept_loop(), asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }
  server_transport(const server_transport&) = delete;
  server_transport& operator=(const server_transport&) = delete;

  /// Stops serving at once; learners see the connection drop and try to reconnect. Call
  /// say_goodbye() first to end their runs instead.
  ~server_transport() {
    io_.stop();
    thread_.join();
  }

  /// The port actually bound (useful with port 0).
  [[nodiscard]] std::uint16_t port() const { return acceptor_.local_endpoint().port(); }

  /// Registered learners without a task in progress.
  [[nodiscard]] std::vector<learner_id> available() const {
    std::lock_guard lock(mutex_);
    std::vector<learner_id> ids;
    for (const auto& [id, entry] : members_)
      if (!entry.pending) ids.push_back(id);
    return ids;
  }

  /// Registered learners, busy or not.
  [[nodiscard]] std::vector<learner_id> connected() const {
    std::lock_guard lock(mutex_);
    std::vector<learner_id> ids;
    for (const auto& [id, entry] : members_) ids.push_back(id);
    return ids;
  }

  /// Encodes the task once and queues the same bytes to every listed learner; the parameters'
  /// scalars are written from the task's own (shared, immutable) parameters, never copied.
  void send(const task<P>& work, std::span<const learner_id> to) {
    auto frame = make_message_frame(frame_type::task, work.round, std::make_shared<const task<P>>(work));
    std::uint64_t task_bytes = 0;
    for (const auto piece : frame.payload) task_bytes += piece.size();
    // Parameters that went coded may come back as they are (a learner that does not code).
    if (work.coded_parameters && work.parameters) task_bytes += work.parameters->values().size_bytes();
    std::vector<std::function<void(outgoing_frame)>> senders;
    {
      std::lock_guard lock(mutex_);
      for (auto id : to) {
        auto found = members_.find(id);
        if (found == members_.end()) {
          push(failure{id, work.kind, work.round, "learner is not connected"});
        } else if (found->second.pending) {
          push(failure{id, work.kind, work.round, "learner is still busy with an earlier task"});
        } else {
          // A reply carries the same model and layout as its task, plus the learner's metrics; a
          // coded one (even top_k at its largest share) takes no more.
          found->second.pending = pending_task{work.kind, work.round, work.parameters, task_bytes + reply_head_room};
          senders.push_back(found->second.send);
        }
      }
    }
    asio::post(io_, [senders = std::move(senders), frame = std::move(frame)] {
      for (const auto& send_to : senders) send_to(frame);
    });
  }

  [[nodiscard]] std::optional<message<P>> receive(deadline_clock::time_point deadline) {
    auto next = inbox_.pop(deadline);
    if (!next) return std::nullopt;
    return std::move(next->content);  // its bytes leave the meters here
  }

  /// What learner `id` reported in its hello when it last registered; empty if it reported
  /// nothing or is not connected.
  [[nodiscard]] settings properties(learner_id id) const {
    std::lock_guard lock(mutex_);
    const auto found = members_.find(id);
    return found == members_.end() ? settings{} : found->second.properties;
  }

  /// Tells every learner the run is over (they exit instead of reconnecting) and waits up to
  /// `timeout` for those frames to be written.
  void say_goodbye(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    goodbye_said_ = true;
    asio::post(io_, [this] {
      std::lock_guard lock(mutex_);
      for (auto& [id, entry] : members_) entry.send(make_frame(frame_type::goodbye, 0));
    });
    const auto until = deadline_clock::now() + timeout;
    while (deadline_clock::now() < until) {
      std::promise<bool> flushed;
      auto result = flushed.get_future();
      asio::post(io_, [this, &flushed] {
        std::lock_guard lock(mutex_);
        bool all = true;
        for (auto& [id, entry] : members_) all = all && entry.flushed();
        flushed.set_value(all);
      });
      if (result.get()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  /// What the transport holds and has turned away, now.
  [[nodiscard]] server_statistics statistics() const {
    std::lock_guard lock(mutex_);
    return {buffered_->current(), buffered_->peak(), waiting_->current(), unauthenticated_total_,
            turned_away_, authentication_failures_, unsolicited_};
  }

 private:
  using plain_stream = asio::ip::tcp::socket;
  using tls_stream = asio::ssl::stream<asio::ip::tcp::socket>;

  struct pending_task {
    task_kind kind;
    std::uint64_t round;
    std::shared_ptr<const P> parameters;  // bounds a reply's size (scalars, tensors)
    std::uint64_t max_reply_bytes;        // the reply frame's payload limit
  };

  // A registered learner. The functions act on its connection and run on the io thread.
  struct registration {
    std::function<void(outgoing_frame)> send;
    std::function<void(const std::string&)> close;
    std::function<bool()> flushed;
    std::function<detail::clock::time_point()> last_heard;
    std::string peer;
    std::optional<pending_task> pending;
    std::uint64_t generation = 0;  // tells a replaced connection from its successor
    std::size_t unsolicited = 0;
    settings properties;  // what the learner reported in its hello
  };

  // A message for the coordinator and the bytes it holds, counted until it is taken.
  struct waiting_message {
    message<P> content;
    detail::metered buffered;
    detail::metered waiting;
  };

  // An address's failed authentications, and until when its connections are turned away.
  struct penalty {
    std::uint32_t failures = 0;
    detail::clock::time_point until{};
  };

  static server_options checked(server_options options) {
    if (!options.log) options.log = [](const std::string&) {};
    std::error_code ec;
    const auto address = asio::ip::make_address(options.address, ec);
    const bool authenticated = !options.tokens.empty() || detail::requires_client_certificates(options.tls);
    if (!ec && !address.is_loopback() && !authenticated && !options.insecure_allow_unauthenticated_network)
      throw configuration_error(
          "refusing to listen on " + options.address +
          " without authentication: anyone who reaches the port could join the federation. Give each learner a "
          "token (server_options::tokens), require client certificates (make_server_tls(files, true)), or set "
          "server_options::insecure_allow_unauthenticated_network");
    if (!options.certificate_names.empty() && !detail::requires_client_certificates(options.tls))
      throw configuration_error("certificate_names need mutual TLS: make_server_tls(files, true)");
    return options;
  }

  void log(const std::string& line) const { options_.log(flotilla::detail::printable(line, 2048)); }
  void log_limited(const std::string& kind, std::string line) {
    if (limiter_.allow(kind, line)) log(line);
  }

  void push(message<P> content, detail::metered buffered = {}) {
    std::int64_t bytes = 0;
    if (auto* answer = std::get_if<reply<P>>(&content)) {
      if (answer->parameters) bytes = std::int64_t(answer->parameters->values().size_bytes());
      if (answer->coded_update) bytes = std::int64_t(answer->coded_update->bytes.size());
    }
    inbox_.push(waiting_message{std::move(content), std::move(buffered), detail::metered(waiting_, bytes)});
  }

  asio::awaitable<void> accept_loop() {
    auto pause = std::chrono::milliseconds(10);
    asio::steady_timer timer(io_);
    for (;;) {
      std::error_code ec;
      auto socket = co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        if (ec == asio::error::operation_aborted) co_return;
        // Out of descriptors, most likely: pause accepting instead of spinning on the error.
        log_limited("accept", "accept failed: " + ec.message() + "; pausing accepts for " +
                                  std::to_string(pause.count()) + " ms");
        timer.expires_after(pause);
        co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        pause = std::min(pause * 2, std::chrono::milliseconds(1000));
        continue;
      }
      pause = std::chrono::milliseconds(10);
      socket.set_option(asio::ip::tcp::no_delay(true), ec);
      const auto address = socket.remote_endpoint(ec).address().to_string();
      if (auto why = turn_away(address)) {
        log_limited("turned away", "connection from " + address + " closed at once: " + *why);
        socket.close(ec);
        continue;
      }
      auto peer = detail::describe_peer(socket);
      if (options_.tls) {
        auto connection = std::make_shared<detail::connection<tls_stream>>(
            tls_stream(std::move(socket), *options_.tls), std::move(peer), buffered_);
        asio::co_spawn(io_, serve(connection, address), asio::detached);
      } else {
        auto connection =
            std::make_shared<detail::connection<plain_stream>>(std::move(socket), std::move(peer), buffered_);
        asio::co_spawn(io_, serve(connection, address), asio::detached);
      }
    }
  }

  // Why a new connection from `address` is closed at once, or nothing (then it holds one of the
  // unauthenticated slots until it registers or closes).
  std::optional<std::string> turn_away(const std::string& address) {
    std::lock_guard lock(mutex_);
    const auto now = detail::clock::now();
    std::optional<std::string> why;
    if (auto found = penalties_.find(address); found != penalties_.end() && found->second.until > now)
      why = "backing off after " + std::to_string(found->second.failures) + " failed authentications";
    else if (unauthenticated_total_ >= options_.max_unauthenticated)
      why = std::to_string(unauthenticated_total_) + " connections are already authenticating (the limit)";
    else if (unauthenticated_[address] >= options_.max_unauthenticated_per_address)
      why = std::to_string(unauthenticated_[address]) + " connections from this address are already authenticating (the limit)";
    if (why) {
      ++turned_away_;
      if (unauthenticated_[address] == 0) unauthenticated_.erase(address);
      return why;
    }
    ++unauthenticated_total_;
    ++unauthenticated_[address];
    return std::nullopt;
  }

  void release_unauthenticated(const std::string& address) {
    std::lock_guard lock(mutex_);
    --unauthenticated_total_;
    if (--unauthenticated_[address] == 0) unauthenticated_.erase(address);
  }

  void record_authentication_failure(const std::string& address) {
    std::lock_guard lock(mutex_);
    ++authentication_failures_;
    if (penalties_.size() > 4096) std::erase_if(penalties_, [&](const auto& entry) {
      return entry.second.until < detail::clock::now();
    });
    auto& entry = penalties_[address];
    ++entry.failures;
    const auto wait = options_.failure_backoff * (std::int64_t{1} << std::min<std::uint32_t>(entry.failures - 1, 16));
    entry.until = detail::clock::now() + std::min<std::chrono::milliseconds>(wait, std::chrono::minutes(1));
  }

  // A refusal frame written on the bare socket, outside any TLS; errors are the peer's to notice.
  static asio::awaitable<void> refuse_in_plain(asio::ip::tcp::socket& socket, refusal_code code) {
    const auto refusal = make_frame(frame_type::refusal, 0, encode_refusal(code));
    const auto& payload = refusal.payload.front();
    const std::array<asio::const_buffer, 2> pieces{asio::buffer(refusal.header),
                                                   asio::buffer(payload.data(), payload.size())};
    std::error_code ignored;
    co_await asio::async_write(socket, pieces, asio::redirect_error(asio::use_awaitable, ignored));
  }

  // The first byte a new connection's learner sends, left unread for the handshake.
  template <class Stream>
  static asio::awaitable<std::byte> peek_first_byte(detail::connection<Stream>& connection) {
    auto& socket = [&]() -> asio::ip::tcp::socket& {
      if constexpr (std::is_same_v<Stream, tls_stream>) return connection.stream().next_layer();
      else return connection.stream();
    }();
    std::array<std::byte, 1> first{};
    co_await socket.async_receive(asio::buffer(first), asio::socket_base::message_peek, asio::use_awaitable);
    co_return first[0];
  }

  template <class Stream>
  asio::awaitable<void> serve(std::shared_ptr<detail::connection<Stream>> connection, std::string address) {
    bool unauthenticated = true;  // holds one of the unauthenticated slots until it leaves them
    const auto leave_unauthenticated = [&] {
      if (unauthenticated) release_unauthenticated(address);
      unauthenticated = false;
    };
    // The peer's name, not the connection: a handler holding its own connection would keep it
    // alive for good if the transport stopped before it closed.
    connection->on_close([this, peer = connection->peer()](const std::string& reason) {
      log("connection from " + peer + " closed before registering: " + reason);
    });
    asio::steady_timer handshake_guard(io_);
    handshake_guard.expires_after(options_.handshake_timeout);
    handshake_guard.async_wait([connection, timeout = options_.handshake_timeout](std::error_code ec) {
      if (!ec) connection->close("no hello within " + std::to_string(timeout.count()) + " ms");
    });
    std::optional<learner_id> id;
    try {
      std::vector<std::string> certificate;
      // A learner speaks first: a TLS client hello starts with byte 0x16, a frame with 'F'. One
      // byte tells a learner on the wrong side of TLS, so both ends can say so in one line.
      const auto first_byte = co_await peek_first_byte(*connection);
      if constexpr (std::is_same_v<Stream, tls_stream>) {
        if (first_byte == std::byte{'F'}) {
          log_limited("plain learner", "connection from " + connection->peer() +
                                           " speaks plain TCP; this aggregator requires TLS");
          co_await refuse_in_plain(connection->stream().next_layer(), refusal_code::tls_required);
          connection->on_close(nullptr);
          connection->close("plain TCP learner refused");
          leave_unauthenticated();
          co_return;
        }
        std::error_code ec;
        co_await connection->stream().async_handshake(asio::ssl::stream_base::server,
                                                      asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
          connection->close("handshake failed: " + ec.message());
          leave_unauthenticated();
          co_return;
        }
        certificate = detail::certificate_names_of(connection->stream().native_handle());
      }
      if constexpr (!std::is_same_v<Stream, tls_stream>) {
        if (first_byte == std::byte{0x16}) {
          log_limited("tls learner", "connection from " + connection->peer() +
                                         " speaks TLS; this aggregator runs plain TCP (server_options::tls is not set)");
          // Plain bytes where its handshake expects TLS: the learner can tell what it reached.
          co_await refuse_in_plain(connection->stream(), refusal_code::tls_unsupported);
          connection->on_close(nullptr);
          connection->close("TLS learner on a plain TCP aggregator");
          leave_unauthenticated();
          co_return;
        }
      }
      const auto nonce = make_challenge();
      // Named, not temporaries in the co_await: GCC 12 mishandles temporaries there.
      const auto challenge = make_frame(frame_type::challenge, 0, encode_challenge(nonce));
      co_await connection->write_now(challenge);
      const auto opening = co_await connection->read_frame(payload_limit(frame_type::opening, 0));
      if (opening.header.type != frame_type::opening)
        throw protocol_error(std::string(to_string(opening.header.type)) + " frame out of place: expected opening");
      auto first = co_await connection->read_frame(payload_limit(frame_type::hello, 0));
      if (first.header.type != frame_type::hello)
        throw protocol_error(std::string(to_string(first.header.type)) + " frame out of place: expected hello");
      const auto greeting = decode_hello(first.payload);
      handshake_guard.cancel();
      std::optional<refusal_code> refusal;
      if (auto why = authenticate(greeting, nonce, certificate)) {
        refusal = refusal_code::authentication_failed;
        record_authentication_failure(address);
        log_limited("authentication", "refused learner " + std::to_string(greeting.learner) + " from " +
                                          connection->peer() + ": " + *why);
      } else if (auto live = live_connection(greeting.learner)) {
        refusal = refusal_code::already_connected;
        log("refused learner " + std::to_string(greeting.learner) + " from " + connection->peer() + ": " + *live);
      }
      leave_unauthenticated();
      if (refusal) {
        const auto frame = make_frame(frame_type::refusal, 0, encode_refusal(*refusal));
        co_await connection->write_now(frame);
        connection->on_close(nullptr);
        connection->close("refused");
        co_return;
      }
      id = greeting.learner;
      const auto generation = enrol(*id, connection, greeting.properties);
      connection->send(make_frame(frame_type::welcome, 0));
      connection->start({options_.heartbeat_interval, options_.heartbeat_timeout, options_.write_timeout,
                         options_.min_receive_rate, options_.max_payload});
      for (;;) {
        const auto header = co_await connection->read_header(options_.max_payload);
        if (header.type == frame_type::reply) {
          const auto limit = reply_allowance(*id, generation, header);
          if (header.payload_size > limit)
            throw protocol_error("reply frame announces " + flotilla::detail::grouped(header.payload_size) +
                                 " payload bytes; the task pending allows " + flotilla::detail::grouped(limit));
          co_await wait_for_room(*connection, header.payload_size);
          const detail::metered admitted(admitted_, std::int64_t(header.payload_size));  // until it waits or fails
          auto [answer, held] = co_await read_reply(*connection, header, pending_parameters(*id, generation));
          accept_reply(*id, generation, header, std::move(answer), std::move(held));
        } else {
          const auto limit = payload_limit(header.type, 0);
          if (header.payload_size > limit)
            throw protocol_error(std::string(to_string(header.type)) + " frame announces " +
                                 flotilla::detail::grouped(header.payload_size) + " payload bytes; the limit is " +
                                 flotilla::detail::grouped(limit));
          const auto payload = co_await connection->read_payload(header);
          dispatch(*id, generation, {header, payload});
        }
      }
    } catch (const protocol_error& error) {
      connection->close(std::string("protocol error: ") + error.what());
    } catch (const std::system_error& error) {
      connection->close(error.code() == asio::error::eof ? std::string("peer closed the connection")
                                                         : error.code().message());
    } catch (const std::exception& error) {
      connection->close(std::string("unexpected error: ") + error.what());
    }
    leave_unauthenticated();
  }

  /// Why a hello fails to authenticate (for the log; the peer is told only that it failed), or
  /// nothing when the learner proved its identity.
  std::optional<std::string> authenticate(const hello& greeting, const challenge_nonce& nonce,
                                          const std::vector<std::string>& certificate) const {
    if (!options_.tokens.empty()) {
      auto found = options_.tokens.find(greeting.learner);
      if (found == options_.tokens.end()) return "unknown learner id";
      if (!proof_matches(greeting.proof, found->second, nonce, greeting.learner)) return "wrong token proof";
    }
    if (!options_.certificate_names.empty()) {
      auto found = options_.certificate_names.find(greeting.learner);
      if (found == options_.certificate_names.end()) return "no certificate name is configured for this learner id";
      if (std::ranges::find(certificate, found->second) == certificate.end())
        return "its certificate is not the one bound to this id (expected the name " + found->second + ")";
    }
    return std::nullopt;
  }

  /// Refuses a second connection of a learner whose current one is alive (heard from within two
  /// heartbeat intervals); a silent one may be taken over.
  std::optional<std::string> live_connection(learner_id id) const {
    std::lock_guard lock(mutex_);
    auto found = members_.find(id);
    if (found == members_.end()) return std::nullopt;
    const auto silent = detail::clock::now() - found->second.last_heard();
    if (silent < 2 * options_.heartbeat_interval)
      return "already connected from " + found->second.peer + ", which is alive";
    return std::nullopt;
  }

  /// Registers the connection as learner `id`, taking over an earlier, silent connection of the
  /// same learner; returns the registration's generation.
  template <class Stream>
  std::uint64_t enrol(learner_id id, const std::shared_ptr<detail::connection<Stream>>& connection, settings properties) {
    const auto generation = ++generations_;
    std::function<void(const std::string&)> close_previous;
    std::string previous_peer;
    {
      std::lock_guard lock(mutex_);
      auto& slot = members_[id];
      if (slot.close) {
        close_previous = std::move(slot.close);
        previous_peer = slot.peer;
        if (slot.pending)
          push(failure{id, slot.pending->kind, slot.pending->round,
                       "learner reconnected; the task sent on its previous connection is lost"});
      }
      slot = registration{[connection](outgoing_frame frame) { connection->send(std::move(frame)); },
                          [connection](const std::string& reason) { connection->close(reason); },
                          [connection] { return !connection->is_open() || connection->idle_writer(); },
                          [connection] { return connection->last_received(); },
                          connection->peer(),
                          std::nullopt,
                          generation,
                          0,
                          std::move(properties)};
    }
    if (close_previous) {
      log("learner " + std::to_string(id) + ": takeover: its silent connection from " + previous_peer +
          " is replaced by " + connection->peer());
      close_previous("replaced by a new connection from the same learner");
    }
    log("learner " + std::to_string(id) + " registered from " + connection->peer());
    connection->on_close([this, id, generation, peer = connection->peer()](const std::string& reason) {
      {
        std::lock_guard lock(mutex_);
        auto found = members_.find(id);
        if (found != members_.end() && found->second.generation == generation) {
          if (found->second.pending) {
            const auto& lost = *found->second.pending;
            push(failure{id, lost.kind, lost.round, "connection lost: " + flotilla::detail::printable(reason)});
          }
          members_.erase(found);
        }
      }
      if (goodbye_said_) log("learner " + std::to_string(id) + " (" + peer + ") left: the run is over");
      else log("learner " + std::to_string(id) + " (" + peer + ") disconnected: " + reason);
    });
    return generation;
  }

  /// The registration `generation` of learner `id`. @throws protocol_error once it was replaced.
  registration& registered(learner_id id, std::uint64_t generation) {
    auto found = members_.find(id);
    if (found == members_.end() || found->second.generation != generation)
      throw protocol_error("frame on a connection that was replaced by a newer one");
    return found->second;
  }

  /// How large a reply learner `id` may send now: refused outright when no task of that round
  /// is pending for it.
  std::uint64_t reply_allowance(learner_id id, std::uint64_t generation, const frame_header& header) {
    std::lock_guard lock(mutex_);
    const auto& slot = registered(id, generation);
    if (!slot.pending) throw protocol_error("reply frame for round " + std::to_string(header.round) +
                                            " with no task pending for this learner");
    if (slot.pending->round != header.round)
      throw protocol_error("reply frame for round " + std::to_string(header.round) + "; the task pending is for round " +
                           std::to_string(slot.pending->round));
    return slot.pending->max_reply_bytes;
  }

  std::shared_ptr<const P> pending_parameters(learner_id id, std::uint64_t generation) {
    std::lock_guard lock(mutex_);
    const auto& slot = registered(id, generation);
    return slot.pending ? slot.pending->parameters : nullptr;
  }

  /// Backpressure: waits, not reading this socket, while the replies waiting for the
  /// coordinator and those being received leave no room for `bytes` more (one reply always gets
  /// through).
  template <class Stream>
  asio::awaitable<void> wait_for_room(detail::connection<Stream>& connection, std::uint64_t bytes) {
    const auto full = [&] {
      const auto held = std::uint64_t(waiting_->current() + admitted_->current());
      return held > 0 && held + bytes > options_.max_waiting_bytes;
    };
    if (!full()) co_return;
    connection.pause_liveness(true);
    asio::steady_timer timer(io_);
    while (connection.is_open() && full()) {
      timer.expires_after(std::chrono::milliseconds(5));
      std::error_code ec;
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    connection.pause_liveness(false);
  }

  /// Receives a reply, its parameters straight into place and counted on the meter. Its size is
  /// bounded by the pending task's model (no more scalars or tensors), so a reply that declares a
  /// larger one is refused before room is made; whether its content is usable (layout, finite
  /// values) is the round's door to judge, once. @throws protocol_error if it does not decode or
  /// exceeds those bounds.
  template <class Stream>
  asio::awaitable<std::pair<reply<P>, detail::metered>> read_reply(detail::connection<Stream>& connection,
                                                                   const frame_header& header,
                                                                   std::shared_ptr<const P> expected) {
    decode_limits limits;
    limits.max_entries = 256;  // metrics
    if (expected) {
      limits.max_scalars = expected->values().size();
      if constexpr (requires { expected->layout().tensors().size(); })
        limits.max_tensors = std::uint32_t(std::min<std::size_t>(expected->layout().tensors().size(), limits.max_tensors));
    } else {
      limits.max_scalars = 0;  // an evaluate task: no parameters come back
    }
    detail::metered held;
    const auto fits = [&](const reply<P>& answer) {
      const auto bytes = (answer.parameters ? answer.parameters->values().size_bytes() : 0) + answer.payload.size() +
                         (answer.coded_update ? answer.coded_update->bytes.size() : 0);
      if (bytes != 0) held = detail::metered(buffered_, std::int64_t(bytes));
    };
    auto answer = co_await connection.read_message(
        header, "reply",
        [&](std::span<const std::byte> first, std::uint64_t total) { return decode_reply_start<P>(first, total, limits); },
        [&](std::span<const std::byte> payload) { return decode_reply<P>(payload, limits); }, fits);
    co_return std::pair{std::move(answer), std::move(held)};
  }

  /// Hands a learner's reply to the coordinator, after checking that it is the learner's own and
  /// answers the task in progress; anything else is a protocol error.
  void accept_reply(learner_id id, std::uint64_t generation, const frame_header& header, reply<P> answer,
                    detail::metered held) {
    if (answer.learner != id)
      throw protocol_error("reply claims to come from learner " + std::to_string(answer.learner) +
                           "; the connection belongs to learner " + std::to_string(id));
    if (answer.round != header.round)
      throw protocol_error("reply payload is for round " + std::to_string(answer.round) + "; its frame says round " +
                           std::to_string(header.round));
    std::lock_guard lock(mutex_);
    auto& slot = registered(id, generation);
    if (!slot.pending || slot.pending->round != answer.round || slot.pending->kind != answer.kind)
      throw protocol_error(std::string(to_string(answer.kind)) + " reply for round " + std::to_string(answer.round) +
                           " matches no task pending for this learner");
    slot.pending.reset();
    push(std::move(answer), std::move(held));
  }

  /// Handles any other frame from a registered learner; anything out of place is a protocol
  /// error. A failure that matches no pending task is counted and dropped, and a learner that
  /// sends more than max_unsolicited of them is disconnected.
  void dispatch(learner_id id, std::uint64_t generation, const detail::incoming_frame& frame) {
    switch (frame.header.type) {
      case frame_type::heartbeat: return;
      case frame_type::failure: {
        auto [kind, reason] = decode_reason(frame.payload);
        std::lock_guard lock(mutex_);
        auto& slot = registered(id, generation);
        if (!slot.pending || slot.pending->round != frame.header.round || slot.pending->kind != kind) {
          ++unsolicited_;
          if (++slot.unsolicited > options_.max_unsolicited)
            throw protocol_error("more than " + std::to_string(options_.max_unsolicited) +
                                 " failure frames that match no task");
          return;
        }
        slot.pending.reset();
        push(failure{id, kind, frame.header.round, "learner reported: " + flotilla::detail::printable(reason)});
        return;
      }
      default:
        throw protocol_error(std::string(to_string(frame.header.type)) + " frame out of place from a learner");
    }
  }

  // Room in a reply beyond its task's encoding: metrics (at most 256 entries, decode_limits) and
  // a stage's payload (secure aggregation's keys and sealed shares, a masked vector's list of
  // neighbours).
  static constexpr std::uint64_t reply_head_room = std::uint64_t{1} << 20;

  server_options options_;
  asio::io_context io_;
  asio::ip::tcp::acceptor acceptor_;
  std::shared_ptr<detail::byte_meter> buffered_ = std::make_shared<detail::byte_meter>();
  std::shared_ptr<detail::byte_meter> waiting_ = std::make_shared<detail::byte_meter>();
  std::shared_ptr<detail::byte_meter> admitted_ = std::make_shared<detail::byte_meter>();  // replies being received
  std::uint64_t generations_ = 0;  // io thread only
  std::atomic<bool> goodbye_said_{false};  // disconnections after it are the run ending, not faults
  detail::log_limiter limiter_;    // io thread only
  mutable std::mutex mutex_;  // guards what follows (the io thread and the coordinator's thread share it)
  std::map<learner_id, registration> members_;
  std::map<std::string, std::size_t> unauthenticated_;  // by address
  std::size_t unauthenticated_total_ = 0;
  std::map<std::string, penalty> penalties_;  // by address
  std::uint64_t turned_away_ = 0;
  std::uint64_t authentication_failures_ = 0;
  std::uint64_t unsolicited_ = 0;
  flotilla::detail::inbox<waiting_message> inbox_;
  std::thread thread_;  // last: joined first
};

}  // namespace flotilla::tcp

#ifdef FLOTILLA_EXTERN_TEMPLATES  // compiled once in flotilla::compiled, with the coordinator over it
#include "flotilla/coordinators/synchronous.hpp"
namespace flotilla {
extern template class basic_mean<parameters<float>, by_examples>;  // weighted_mean
extern template class tcp::server_transport<parameters<float>>;
extern template class coordinator<tcp::server_transport<parameters<float>>>;
}  // namespace flotilla
#endif

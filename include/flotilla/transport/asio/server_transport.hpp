#pragma once
// The aggregator side of the TCP transport: learners dial in (they are the ones behind NAT),
// register with a hello, and receive tasks. Models flotilla::Transport, so the coordinator runs
// over it unchanged. One io_context thread serves every connection with coroutines; a reply's
// parameters are received straight into place and handed to the coordinator as each completes,
// so aggregation overlaps with receiving the next reply.

#include "flotilla/transport/asio/detail/asio_config.hpp"  // first: coroutine support under Clang

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/ssl/stream.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

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

#include "flotilla/arithmetic.hpp"
#include "flotilla/concepts/transport.hpp"
#include "flotilla/detail/inbox.hpp"
#include "flotilla/errors.hpp"
#include "flotilla/messages.hpp"
#include "flotilla/serialization.hpp"
#include "flotilla/transport/asio/detail/connection.hpp"
#include "flotilla/transport/asio/frame.hpp"
#include "flotilla/transport/asio/protocol.hpp"

namespace flotilla::tcp {

/// Receives the transport's log lines: connections, refusals, and why each connection closed.
using log_function = std::function<void(const std::string&)>;

/// Writes log lines to standard error.
inline void log_to_stderr(const std::string& line) { std::fprintf(stderr, "flotilla tcp: %s\n", line.c_str()); }

struct server_options {
  std::string address = "127.0.0.1";  ///< interface to listen on; "0.0.0.0" for every IPv4 interface
  std::uint16_t port = 0;             ///< 0 picks a free port; see server_transport::port()
  std::uint64_t max_payload = std::uint64_t{1} << 32;  ///< largest frame payload accepted, in bytes
  std::chrono::milliseconds heartbeat_interval{1000};
  std::chrono::milliseconds heartbeat_timeout{5000};   ///< silence after which a learner is dropped
  std::chrono::milliseconds handshake_timeout{5000};   ///< time to complete TLS and send a hello
  std::map<learner_id, std::string> tokens;  ///< when not empty, only these learners, with these tokens
  std::shared_ptr<asio::ssl::context> tls;   ///< null: plain TCP (see make_server_tls)
  log_function log = log_to_stderr;
};

/// @brief `Transport` whose learners are processes that connected over TCP (optionally TLS).
template <ParameterSet P>
class server_transport {
 public:
  using parameters_type = P;

  /// Binds and starts serving. @throws std::system_error if the address cannot be bound.
  explicit server_transport(server_options options)
      : options_(std::move(options)),
        acceptor_(io_, asio::ip::tcp::endpoint(asio::ip::make_address(options_.address), options_.port)) {
    if (!options_.log) options_.log = [](const std::string&) {};
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

  /// Waits until at least `count` learners are registered; false if `timeout` passes first.
  /// (Before the first round, so that it starts with everyone who was launched.)
  bool wait_for_learners(std::size_t count, std::chrono::milliseconds timeout) const {
    const auto until = deadline_clock::now() + timeout;
    while (connected().size() < count) {
      if (deadline_clock::now() >= until) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
  }

  /// Encodes the task once and queues the same bytes to every listed learner; the parameters'
  /// scalars are written from the task's own (shared, immutable) parameters, never copied.
  void send(const task<P>& work, std::span<const learner_id> to) {
    auto frame = make_message_frame(frame_type::task, work.round, std::make_shared<const task<P>>(work));
    std::vector<std::function<void(outgoing_frame)>> senders;
    {
      std::lock_guard lock(mutex_);
      for (auto id : to) {
        auto found = members_.find(id);
        if (found == members_.end()) {
          inbox_.push(failure{id, work.kind, work.round, "learner is not connected"});
        } else if (found->second.pending) {
          inbox_.push(failure{id, work.kind, work.round, "learner is still busy with an earlier task"});
        } else {
          found->second.pending = pending_task{work.kind, work.round, work.parameters};
          senders.push_back(found->second.send);
        }
      }
    }
    asio::post(io_, [senders = std::move(senders), frame = std::move(frame)] {
      for (const auto& send_to : senders) send_to(frame);
    });
  }

  [[nodiscard]] std::optional<message<P>> receive(deadline_clock::time_point deadline) { return inbox_.pop(deadline); }

  /// Tells every learner the run is over (they exit instead of reconnecting) and waits up to
  /// `timeout` for those frames to be written.
  void say_goodbye(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
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

 private:
  using plain_stream = asio::ip::tcp::socket;
  using tls_stream = asio::ssl::stream<asio::ip::tcp::socket>;

  struct pending_task {
    task_kind kind;
    std::uint64_t round;
    std::shared_ptr<const P> parameters;  // what a reply's layout is checked against
  };

  // A registered learner. The functions act on its connection and run on the io thread.
  struct registration {
    std::function<void(outgoing_frame)> send;
    std::function<void(const std::string&)> close;
    std::function<bool()> flushed;
    std::optional<pending_task> pending;
    std::uint64_t generation = 0;  // tells a replaced connection from its successor
  };

  asio::awaitable<void> accept_loop() {
    for (;;) {
      std::error_code ec;
      auto socket = co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        if (ec == asio::error::operation_aborted) co_return;
        options_.log("accept failed: " + ec.message());
        continue;
      }
      socket.set_option(asio::ip::tcp::no_delay(true), ec);
      auto peer = detail::describe_peer(socket);
      if (options_.tls) {
        auto connection = std::make_shared<detail::connection<tls_stream>>(tls_stream(std::move(socket), *options_.tls),
                                                                           std::move(peer));
        asio::co_spawn(io_, serve(connection), asio::detached);
      } else {
        auto connection = std::make_shared<detail::connection<plain_stream>>(std::move(socket), std::move(peer));
        asio::co_spawn(io_, serve(connection), asio::detached);
      }
    }
  }

  template <class Stream>
  asio::awaitable<void> serve(std::shared_ptr<detail::connection<Stream>> connection) {
    connection->on_close([this, connection](const std::string& reason) {
      options_.log("connection from " + connection->peer() + " closed before registering: " + reason);
    });
    asio::steady_timer handshake_guard(io_);
    handshake_guard.expires_after(options_.handshake_timeout);
    handshake_guard.async_wait([connection, timeout = options_.handshake_timeout](std::error_code ec) {
      if (!ec) connection->close("no hello within " + std::to_string(timeout.count()) + " ms");
    });
    std::optional<learner_id> id;
    try {
      if constexpr (std::is_same_v<Stream, tls_stream>) {
        std::error_code ec;
        co_await connection->stream().async_handshake(asio::ssl::stream_base::server,
                                                      asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
          connection->close("handshake failed: " + ec.message());
          co_return;
        }
      }
      auto first = co_await connection->read_frame(hello_limit);
      if (first.header.type != frame_type::hello)
        throw protocol_error(std::string(to_string(first.header.type)) + " frame out of place: expected hello");
      const auto greeting = decode_hello(first.payload);
      handshake_guard.cancel();
      if (auto refusal = refuse(greeting)) {
        options_.log("refused learner " + std::to_string(greeting.learner) + " from " + connection->peer() + ": " +
                     *refusal);
        // Named, not a temporary in the co_await: GCC 12 mishandles temporaries there.
        const auto frame = make_frame(frame_type::refusal, 0, encode_reason(task_kind::fit, *refusal));
        co_await connection->write_now(frame);
        connection->on_close(nullptr);
        connection->close("refused");
        co_return;
      }
      id = greeting.learner;
      const auto generation = enrol(*id, connection);
      connection->send(make_frame(frame_type::welcome, 0));
      connection->start(options_.heartbeat_interval, options_.heartbeat_timeout);
      for (;;) {
        const auto header = co_await connection->read_header(options_.max_payload);
        if (header.type == frame_type::reply) {
          auto answer = co_await read_reply(*connection, header);
          accept_reply(*id, generation, header, std::move(answer));
        } else {
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
  }

  /// Why a hello is refused, or nothing when the learner may register.
  std::optional<std::string> refuse(const hello& greeting) const {
    if (options_.tokens.empty()) return std::nullopt;
    auto found = options_.tokens.find(greeting.learner);
    if (found == options_.tokens.end()) return "unknown learner id";
    if (found->second != greeting.token) return "wrong token";
    return std::nullopt;
  }

  /// Registers the connection as learner `id`, replacing an earlier connection of the same
  /// learner; returns the registration's generation.
  template <class Stream>
  std::uint64_t enrol(learner_id id, const std::shared_ptr<detail::connection<Stream>>& connection) {
    const auto generation = ++generations_;
    std::function<void(const std::string&)> close_previous;
    {
      std::lock_guard lock(mutex_);
      auto& slot = members_[id];
      if (slot.close) {
        close_previous = std::move(slot.close);
        if (slot.pending)
          inbox_.push(failure{id, slot.pending->kind, slot.pending->round,
                                   "learner reconnected; the task sent on its previous connection is lost"});
      }
      slot = registration{[connection](outgoing_frame frame) { connection->send(std::move(frame)); },
                    [connection](const std::string& reason) { connection->close(reason); },
                    [connection] { return !connection->is_open() || connection->idle_writer(); },
                    std::nullopt, generation};
    }
    if (close_previous) close_previous("replaced by a new connection from the same learner");
    options_.log("learner " + std::to_string(id) + " registered from " + connection->peer());
    connection->on_close([this, id, generation, peer = connection->peer()](const std::string& reason) {
      {
        std::lock_guard lock(mutex_);
        auto found = members_.find(id);
        if (found != members_.end() && found->second.generation == generation) {
          if (found->second.pending) {
            const auto& lost = *found->second.pending;
            inbox_.push(failure{id, lost.kind, lost.round, "connection lost: " + reason});
          }
          members_.erase(found);
        }
      }
      options_.log("learner " + std::to_string(id) + " (" + peer + ") disconnected: " + reason);
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

  /// Receives a reply, its parameters straight into place. @throws protocol_error if it does not decode.
  template <class Stream>
  static asio::awaitable<reply<P>> read_reply(detail::connection<Stream>& connection, const frame_header& header) {
    co_return co_await connection.read_message(
        header, "reply",
        [](std::span<const std::byte> first, std::uint64_t total) { return decode_reply_start<P>(first, total); },
        [](std::span<const std::byte> payload) { return decode_reply<P>(payload); });
  }

  /// Hands a learner's reply to the coordinator, after checking that it is the learner's own and
  /// (for the task in progress) that its update fits; anything else is a protocol error.
  void accept_reply(learner_id id, std::uint64_t generation, const frame_header& header, reply<P> answer) {
    if (answer.learner != id)
      throw protocol_error("reply claims to come from learner " + std::to_string(answer.learner) +
                           "; the connection belongs to learner " + std::to_string(id));
    if (answer.round != header.round)
      throw protocol_error("reply payload is for round " + std::to_string(answer.round) + "; its frame says round " +
                           std::to_string(header.round));
    std::lock_guard lock(mutex_);
    auto& slot = registered(id, generation);
    if (slot.pending && slot.pending->round == answer.round && slot.pending->kind == answer.kind) {
      check_update(answer, *slot.pending);
      slot.pending.reset();
    }
    inbox_.push(std::move(answer));
  }

  /// Handles any other frame from a registered learner; anything out of place is a protocol error.
  void dispatch(learner_id id, std::uint64_t generation, const detail::incoming_frame& frame) {
    switch (frame.header.type) {
      case frame_type::heartbeat: return;
      case frame_type::failure: {
        auto [kind, reason] = decode_reason(frame.payload);
        std::lock_guard lock(mutex_);
        auto& slot = registered(id, generation);
        if (slot.pending && slot.pending->round == frame.header.round && slot.pending->kind == kind) slot.pending.reset();
        inbox_.push(failure{id, kind, frame.header.round, "learner reported: " + reason});
        return;
      }
      default:
        throw protocol_error(std::string(to_string(frame.header.type)) + " frame out of place from a learner");
    }
  }

  /// A fit reply whose parameters do not fit the task's layout, or are not finite, is bad input:
  /// the connection is closed (the close handler records the task as failed with this reason).
  static void check_update(const reply<P>& answer, const pending_task& task_sent) {
    if (answer.kind != task_kind::fit || !answer.parameters || !task_sent.parameters) return;
    try {
      require_same_layout(*answer.parameters, *task_sent.parameters, "reply", "the task's model");
    } catch (const layout_error& error) {
      throw protocol_error(error.what());
    }
    const auto bad = first_non_finite(*answer.parameters);
    if (bad != answer.parameters->values().size())
      throw protocol_error("reply holds a non-finite value at parameter index " + std::to_string(bad));
  }

  static constexpr std::uint64_t hello_limit = 8192;  // a hello is an id and a short token

  server_options options_;
  asio::io_context io_;
  asio::ip::tcp::acceptor acceptor_;
  std::uint64_t generations_ = 0;  // io thread only
  mutable std::mutex mutex_;  // guards members_ (the io thread and the coordinator's thread share it)
  std::map<learner_id, registration> members_;
  flotilla::detail::inbox<message<P>> inbox_;
  std::thread thread_;  // last: joined first
};

}  // namespace flotilla::tcp

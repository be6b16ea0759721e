#pragma once
// The learner side of the TCP transport: dials the aggregator, registers, answers tasks, and
// reconnects with exponential backoff whenever the connection drops (an aggregator restart
// included) until the aggregator says goodbye, refuses it, or stop() is called. Training runs on
// its own thread, so heartbeats keep flowing while the model trains.

#include "flotilla/transport/tcp/detail/asio_config.hpp"  // first: coroutine support under Clang

#include <asio/co_spawn.hpp>
#include <asio/connect.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/ssl/host_name_verification.hpp>
#include <asio/ssl/stream.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <openssl/ssl.h>  // SSL_set_tlsext_host_name: server name indication

#include <algorithm>
#include <atomic>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>

#include "flotilla/concepts/learner.hpp"
#include "flotilla/detail/text.hpp"
#include "flotilla/errors.hpp"
#include "flotilla/messages.hpp"
#include "flotilla/wire/messages.hpp"
#include "flotilla/transport/tcp/authentication.hpp"
#include "flotilla/transport/tcp/detail/connection.hpp"
#include "flotilla/transport/tcp/frame.hpp"
#include "flotilla/transport/tcp/log.hpp"
#include "flotilla/transport/tcp/protocol.hpp"

namespace flotilla::tcp {

struct client_options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  std::string token;  ///< proves this learner's identity (never sent itself); empty if none is needed
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
  std::shared_ptr<asio::ssl::context> tls;  ///< null: plain TCP (see make_learner_tls)
  std::string tls_server_name;              ///< name the aggregator's certificate must carry (default: host)
  log_function log = log_to_stderr;
};

/// How a learner client's run ended.
enum class client_exit : std::uint8_t {
  goodbye,  ///< the aggregator ended the run
  refused,  ///< the aggregator refused this learner's identity (unknown id, wrong token or certificate)
  stopped,  ///< stop() was called
};

namespace detail {
/// A learner that can show its model's parameters, so tasks can be bounded by them.
template <class L>
concept exposes_model_parameters = requires(const L& l) {
  { l.model().parameters() } -> std::convertible_to<const typename L::parameters_type&>;
};
}  // namespace detail

/// @brief Serves one `Learner` to a remote aggregator until the run ends.
template <Learner L>
class learner_client {
 public:
  using parameters_type = typename L::parameters_type;

  learner_client(L& learner, client_options options) : learner_(learner), options_(std::move(options)) {
    initialize_openssl();  // before training starts a thread of its own
    if (!options_.log) options_.log = [](const std::string&) {};
    // Refusal reasons and close reasons can carry the aggregator's text: one line each, escaped.
    options_.log = [sink = std::move(options_.log)](const std::string& line) {
      sink(flotilla::detail::printable(line, 2048));
    };
    if (options_.tls_server_name.empty()) options_.tls_server_name = options_.host;
    // Taken now, before training can change the model on the worker thread.
    if constexpr (detail::exposes_model_parameters<L>) {
      const auto& own = learner_.model().parameters();
      own_model_.emplace(own_model{own.layout(), own.values().size()});
    }
  }
  learner_client(const learner_client&) = delete;
  learner_client& operator=(const learner_client&) = delete;
  ~learner_client() {
    if (worker_.joinable()) worker_.join();
  }

  /// Connects, serves tasks and reconnects until the run ends; returns why it ended.
  client_exit run() {
    asio::co_spawn(io_, session_loop(), asio::detached);
    io_.run();
    if (worker_.joinable()) worker_.join();
    return exit_;
  }

  /// Ends run() from another thread.
  void stop() {
    asio::post(io_, [this] { finish(client_exit::stopped, "stopped"); });
  }

 private:
  using plain_stream = asio::ip::tcp::socket;
  using tls_stream = asio::ssl::stream<asio::ip::tcp::socket>;

  asio::awaitable<void> session_loop() {
    auto backoff = options_.first_backoff;
    while (!finished_) {
      bool registered = false;
      try {
        asio::ip::tcp::resolver resolver(io_);
        const auto endpoints = co_await resolver.async_resolve(options_.host, std::to_string(options_.port),
                                                               asio::use_awaitable);
        asio::ip::tcp::socket socket(io_);
        co_await asio::async_connect(socket, endpoints, asio::use_awaitable);
        socket.set_option(asio::ip::tcp::no_delay(true));
        auto peer = detail::describe_peer(socket);
        if (options_.tls) {
          tls_stream stream(std::move(socket), *options_.tls);
          SSL_set_tlsext_host_name(stream.native_handle(), options_.tls_server_name.c_str());
          stream.set_verify_callback(asio::ssl::host_name_verification(options_.tls_server_name));
          co_await stream.async_handshake(asio::ssl::stream_base::client, asio::use_awaitable);
          registered = co_await serve(std::make_shared<detail::connection<tls_stream>>(std::move(stream), peer));
        } else {
          registered = co_await serve(std::make_shared<detail::connection<plain_stream>>(std::move(socket), peer));
        }
      } catch (const std::exception& error) {
        if (!finished_) options_.log("learner " + std::to_string(learner_.id()) + ": " + describe(error));
      }
      if (finished_) break;
      if (registered) backoff = options_.first_backoff;  // a working connection resets the backoff
      options_.log("learner " + std::to_string(learner_.id()) + ": reconnecting in " +
                   std::to_string(backoff.count()) + " ms");
      backoff_timer_.expires_after(backoff);
      std::error_code ec;
      co_await backoff_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      backoff = std::min(backoff * 2, options_.max_backoff);
    }
  }

  /// One connection: hello, then tasks until it closes. Returns whether registration succeeded.
  template <class Stream>
  asio::awaitable<bool> serve(std::shared_ptr<detail::connection<Stream>> connection) {
    auto challenge = co_await connection->read_frame(payload_limit(frame_type::challenge, 0));
    if (challenge.header.type != frame_type::challenge)
      throw protocol_error(std::string(to_string(challenge.header.type)) + " frame out of place: expected challenge");
    const auto nonce = decode_challenge(challenge.payload);
    // Named, not a temporary in the co_await: GCC 12 mishandles temporaries there.
    const auto greeting =
        make_frame(frame_type::hello, 0, encode_hello({learner_.id(), prove(options_.token, nonce, learner_.id())}));
    co_await connection->write_now(greeting);
    auto answer = co_await connection->read_frame(payload_limit(frame_type::refusal, 0));
    if (answer.header.type == frame_type::refusal) {
      const auto code = decode_refusal(answer.payload);
      if (code == refusal_code::authentication_failed) {
        finish(client_exit::refused, std::string("refused by the aggregator: ") + to_string(code));
      } else {
        options_.log("learner " + std::to_string(learner_.id()) + ": not registered: " + to_string(code));
      }
      co_return false;
    }
    if (answer.header.type != frame_type::welcome || !answer.payload.empty())
      throw protocol_error(std::string(to_string(answer.header.type)) + " frame out of place: expected welcome");
    options_.log("learner " + std::to_string(learner_.id()) + ": registered with " + connection->peer());
    close_current_ = [connection](const std::string& reason) { connection->close(reason); };
    send_current_ = [connection](outgoing_frame frame) { connection->send(std::move(frame)); };
    connection->on_close([this](const std::string& reason) {
      options_.log("learner " + std::to_string(learner_.id()) + ": connection closed: " + reason);
      send_current_ = nullptr;
      close_current_ = nullptr;
    });
    connection->start({options_.heartbeat_interval, options_.heartbeat_timeout, options_.write_timeout,
                       options_.min_receive_rate, options_.max_payload});
    try {
      while (!finished_) {
        const auto header = co_await connection->read_header(options_.max_payload);
        const auto limit = header.type == frame_type::task ? task_limit() : payload_limit(header.type, 0);
        if (header.payload_size > limit)
          throw protocol_error(std::string(to_string(header.type)) + " frame announces " +
                               flotilla::detail::grouped(header.payload_size) + " payload bytes; the limit is " +
                               flotilla::detail::grouped(limit));
        if (header.type == frame_type::task) {
          auto work = co_await read_task(*connection, header);
          start_task(std::move(work));
          continue;
        }
        (void)co_await connection->read_payload(header);
        switch (header.type) {
          case frame_type::heartbeat: break;
          case frame_type::goodbye: finish(client_exit::goodbye, "the aggregator ended the run"); break;
          default:
            throw protocol_error(std::string(to_string(header.type)) + " frame out of place from the aggregator");
        }
      }
    } catch (const protocol_error& error) {
      connection->close(std::string("protocol error: ") + error.what());
    } catch (const std::system_error& error) {
      connection->close(error.code() == asio::error::eof ? std::string("the aggregator closed the connection")
                                                         : error.code().message());
    }
    co_return true;
  }

  /// The largest task frame accepted: the own model's scalars plus room for its layout and the
  /// task's settings when the learner shows its model, the configured maximum otherwise.
  std::uint64_t task_limit() const {
    if (!own_model_) return options_.max_payload;
    return std::min<std::uint64_t>(options_.max_payload,
                                   own_model_->scalars * sizeof(typename parameters_type::scalar_type) + task_head_room);
  }

  /// Receives a task, its parameters straight into place. A learner that shows its model
  /// refuses, from the first chunk, a task for any other layout. @throws protocol_error if it
  /// does not decode or does not fit.
  template <class Stream>
  asio::awaitable<task<parameters_type>> read_task(detail::connection<Stream>& connection, const frame_header& header) {
    decode_limits limits;
    limits.max_entries = 256;  // settings
    const auto fits = [&](const task<parameters_type>& work) {
      if (!own_model_ || !work.parameters) return;
      if (work.parameters->values().size() != own_model_->scalars)
        throw protocol_error("task has " + flotilla::detail::grouped(work.parameters->values().size()) +
                             " parameters; this learner's model has " + flotilla::detail::grouped(own_model_->scalars));
      if (!(work.parameters->layout() == own_model_->layout))
        throw protocol_error("task's parameter layout differs from this learner's model's");
    };
    if (own_model_) limits.max_scalars = own_model_->scalars;
    co_return co_await connection.read_message(
        header, "task",
        [&](std::span<const std::byte> first, std::uint64_t total) {
          return decode_task_start<parameters_type>(first, total, limits);
        },
        [&](std::span<const std::byte> payload) { return decode_task<parameters_type>(payload, limits); }, fits);
  }

  // Room in a task beyond its model's scalars: the layout's names and shapes and the settings.
  static constexpr std::uint64_t task_head_room = std::uint64_t{1} << 20;

  /// Trains on the worker thread; the reply is queued when training ends, its parameters written
  /// straight from the reply (no encoded copy).
  void start_task(task<parameters_type> work) {
    if (busy_) {
      send_current_(make_frame(frame_type::failure, work.round,
                               encode_reason(work.kind, "learner is still busy with an earlier task")));
      return;
    }
    busy_ = true;
    if (worker_.joinable()) worker_.join();
    worker_ = std::thread([this, work = std::move(work)]() mutable {
      outgoing_frame answer;
      try {
        auto result = std::make_shared<const reply<parameters_type>>(learner_.handle(work));
        work.parameters.reset();  // the model holds them now: one copy fewer while sending
        answer = make_message_frame(frame_type::reply, work.round, std::move(result));
      } catch (const std::exception& error) {
        answer = make_frame(frame_type::failure, work.round, encode_reason(work.kind, error.what()));
      }
      asio::post(io_, [this, answer = std::move(answer), round = work.round]() mutable {
        busy_ = false;
        if (send_current_) send_current_(std::move(answer));
        else options_.log("learner " + std::to_string(learner_.id()) + ": answer for round " + std::to_string(round) +
                          " dropped: not connected");
      });
    });
  }

  void finish(client_exit why, const std::string& reason) {
    if (finished_) return;
    finished_ = true;
    exit_ = why;
    options_.log("learner " + std::to_string(learner_.id()) + ": " + reason);
    backoff_timer_.cancel();
    if (close_current_) close_current_(reason);
  }

  static std::string describe(const std::exception& error) {
    if (auto* system = dynamic_cast<const std::system_error*>(&error)) return "connection failed: " + system->code().message();
    return std::string("connection failed: ") + error.what();
  }

  // What tasks must look like, when the learner shows its model.
  struct own_model {
    std::remove_cvref_t<decltype(std::declval<const parameters_type&>().layout())> layout;
    std::size_t scalars;
  };

  L& learner_;
  client_options options_;
  std::optional<own_model> own_model_;
  asio::io_context io_;
  asio::steady_timer backoff_timer_{io_};
  bool finished_ = false;  // io thread only
  bool busy_ = false;      // io thread only
  client_exit exit_ = client_exit::stopped;
  std::function<void(outgoing_frame)> send_current_;
  std::function<void(const std::string&)> close_current_;
  std::thread worker_;
};

}  // namespace flotilla::tcp

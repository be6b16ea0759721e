// The learner side's network engine (detail/client_core.hpp): all of its Asio code. Included by
// that header in the header-only mode; compiled once in flotilla::compiled otherwise.
#pragma once

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
#include <exception>
#include <system_error>
#include <thread>
#include <utility>

#include "flotilla/detail/text.hpp"
#include "flotilla/errors.hpp"
#include "flotilla/transport/tcp/authentication.hpp"
#include "flotilla/transport/tcp/detail/client_core.hpp"
#include "flotilla/transport/tcp/detail/connection.hpp"
#include "flotilla/transport/tcp/frame.hpp"

namespace flotilla::tcp::detail {

struct client_core::state {
  using plain_stream = asio::ip::tcp::socket;
  using tls_stream = asio::ssl::stream<asio::ip::tcp::socket>;

  state(served_learner& served, client_options& settings) : learner(served), options(settings) {}
  ~state() {
    if (worker.joinable()) worker.join();
  }

  served_learner& learner;
  client_options& options;
  asio::io_context io;
  asio::steady_timer backoff_timer{io};
  bool finished = false;  // io thread only
  bool busy = false;      // io thread only
  client_exit exit = client_exit::stopped;
  std::function<void(outgoing_frame)> send_current;
  std::function<void(const std::string&)> close_current;
  std::thread worker;

  void log(const std::string& line) const { options.log("learner " + std::to_string(learner.id()) + ": " + line); }

  asio::awaitable<void> session_loop() {
    auto backoff = options.first_backoff;
    while (!finished) {
      bool registered = false;
      try {
        asio::ip::tcp::resolver resolver(io);
        const auto endpoints = co_await resolver.async_resolve(options.host, std::to_string(options.port),
                                                               asio::use_awaitable);
        asio::ip::tcp::socket socket(io);
        co_await asio::async_connect(socket, endpoints, asio::use_awaitable);
        socket.set_option(asio::ip::tcp::no_delay(true));
        auto peer = describe_peer(socket);
        if (options.tls) {
          tls_stream stream(std::move(socket), *options.tls);
          SSL_set_tlsext_host_name(stream.native_handle(), options.tls_server_name.c_str());
          stream.set_verify_callback(asio::ssl::host_name_verification(options.tls_server_name));
          co_await stream.async_handshake(asio::ssl::stream_base::client, asio::use_awaitable);
          registered = co_await serve(std::make_shared<connection<tls_stream>>(std::move(stream), peer));
        } else {
          registered = co_await serve(std::make_shared<connection<plain_stream>>(std::move(socket), peer));
        }
      } catch (const std::exception& error) {
        if (!finished) log(describe(error));
      }
      if (finished) break;
      if (registered) backoff = options.first_backoff;  // a working connection resets the backoff
      log("reconnecting in " + std::to_string(backoff.count()) + " ms");
      backoff_timer.expires_after(backoff);
      std::error_code ec;
      co_await backoff_timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      backoff = std::min(backoff * 2, options.max_backoff);
    }
  }

  /// One connection: hello, then tasks until it closes. Returns whether registration succeeded.
  template <class Stream>
  asio::awaitable<bool> serve(std::shared_ptr<connection<Stream>> link) {
    auto challenge = co_await link->read_frame(payload_limit(frame_type::challenge, 0));
    if (challenge.header.type != frame_type::challenge)
      throw protocol_error(std::string(to_string(challenge.header.type)) + " frame out of place: expected challenge");
    const auto nonce = decode_challenge(challenge.payload);
    // Named, not a temporary in the co_await: GCC 12 mishandles temporaries there.
    const auto greeting =
        make_frame(frame_type::hello, 0, encode_hello({learner.id(), prove(options.token, nonce, learner.id())}));
    co_await link->write_now(greeting);
    auto answer = co_await link->read_frame(payload_limit(frame_type::refusal, 0));
    if (answer.header.type == frame_type::refusal) {
      const auto code = decode_refusal(answer.payload);
      if (code == refusal_code::authentication_failed) {
        finish(client_exit::refused, std::string("refused by the aggregator: ") + to_string(code));
      } else {
        log(std::string("not registered: ") + to_string(code));
      }
      co_return false;
    }
    if (answer.header.type != frame_type::welcome || !answer.payload.empty())
      throw protocol_error(std::string(to_string(answer.header.type)) + " frame out of place: expected welcome");
    log("registered with " + link->peer());
    close_current = [link](const std::string& reason) { link->close(reason); };
    send_current = [link](outgoing_frame frame) { link->send(std::move(frame)); };
    link->on_close([this](const std::string& reason) {
      log("connection closed: " + reason);
      send_current = nullptr;
      close_current = nullptr;
    });
    link->start({options.heartbeat_interval, options.heartbeat_timeout, options.write_timeout,
                 options.min_receive_rate, options.max_payload});
    try {
      while (!finished) {
        const auto header = co_await link->read_header(options.max_payload);
        const auto limit =
            header.type == frame_type::task ? learner.task_limit(options.max_payload) : payload_limit(header.type, 0);
        if (header.payload_size > limit)
          throw protocol_error(std::string(to_string(header.type)) + " frame announces " +
                               flotilla::detail::grouped(header.payload_size) + " payload bytes; the limit is " +
                               flotilla::detail::grouped(limit));
        if (header.type == frame_type::task) {
          co_await read_task(*link, header);
          start_task(learner.take_task());
          continue;
        }
        (void)co_await link->read_payload(header);
        switch (header.type) {
          case frame_type::heartbeat: break;
          case frame_type::goodbye: finish(client_exit::goodbye, "the aggregator ended the run"); break;
          default:
            throw protocol_error(std::string(to_string(header.type)) + " frame out of place from the aggregator");
        }
      }
    } catch (const protocol_error& error) {
      link->close(std::string("protocol error: ") + error.what());
    } catch (const std::system_error& error) {
      link->close(error.code() == asio::error::eof ? std::string("the aggregator closed the connection")
                                                   : error.code().message());
    }
    co_return true;
  }

  /// Receives a task into the learner's decoder, its parameters straight into place.
  template <class Stream>
  asio::awaitable<void> read_task(connection<Stream>& link, const frame_header& header) {
    // The learner keeps the decoded task; the connection only needs where its tail goes.
    struct started_task {
      bool message = true;
      std::span<std::byte> tail;
      [[nodiscard]] std::span<std::byte> rest() const { return tail; }
    };
    (void)co_await link.read_message(
        header, "task",
        [&](std::span<const std::byte> first, std::uint64_t total) -> std::optional<started_task> {
          auto rest = learner.start_task(first, total);
          if (!rest) return std::nullopt;
          return started_task{true, *rest};
        },
        [&](std::span<const std::byte> payload) {
          learner.whole_task(payload);
          return true;
        },
        [](bool) {});
  }

  /// Runs the task on the worker thread; its answer is queued when it ends.
  void start_task(received_task work) {
    if (busy) {
      send_current(make_frame(frame_type::failure, work.round,
                              encode_reason(work.kind, "learner is still busy with an earlier task")));
      return;
    }
    busy = true;
    if (worker.joinable()) worker.join();
    worker = std::thread([this, work = std::move(work)]() mutable {
      auto answer = work.run();
      work.run = nullptr;  // the task's parameters go with it: one copy fewer while sending
      asio::post(io, [this, answer = std::move(answer), round = work.round]() mutable {
        busy = false;
        if (send_current) send_current(std::move(answer));
        else log("answer for round " + std::to_string(round) + " dropped: not connected");
      });
    });
  }

  void finish(client_exit why, const std::string& reason) {
    if (finished) return;
    finished = true;
    exit = why;
    log(reason);
    backoff_timer.cancel();
    if (close_current) close_current(reason);
  }

  static std::string describe(const std::exception& error) {
    if (auto* system = dynamic_cast<const std::system_error*>(&error)) return "connection failed: " + system->code().message();
    return std::string("connection failed: ") + error.what();
  }
};

FLOTILLA_DECL client_core::client_core(served_learner& learner, client_options options)
    : learner_(learner), options_(std::move(options)) {
  initialize_openssl();  // before training starts a thread of its own
  if (!options_.log) options_.log = [](const std::string&) {};
  // Refusal reasons and close reasons can carry the aggregator's text: one line each, escaped.
  options_.log = [sink = std::move(options_.log)](const std::string& line) {
    sink(flotilla::detail::printable(line, 2048));
  };
  if (options_.tls_server_name.empty()) options_.tls_server_name = options_.host;
  state_ = std::make_unique<state>(learner_, options_);
}

FLOTILLA_DECL client_core::~client_core() = default;

FLOTILLA_DECL client_exit client_core::run() {
  asio::co_spawn(state_->io, state_->session_loop(), asio::detached);
  state_->io.run();
  if (state_->worker.joinable()) state_->worker.join();
  return state_->exit;
}

FLOTILLA_DECL void client_core::stop() {
  asio::post(state_->io, [this] { state_->finish(client_exit::stopped, "stopped"); });
}

}  // namespace flotilla::tcp::detail

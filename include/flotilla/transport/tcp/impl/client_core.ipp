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

#include <openssl/err.h>  // ERR_GET_REASON: why a TLS handshake failed
#include <openssl/ssl.h>  // SSL_set_tlsext_host_name: server name indication
#include <openssl/x509.h>  // X509_verify_cert_error_string

#include <algorithm>
#include <exception>
#include <optional>
#include <stdexcept>
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

// A connection attempt that failed for a cause retrying cannot fix.
struct cannot_get_in : std::runtime_error {
  cannot_get_in(client_exit why, const std::string& what) : std::runtime_error(what), exit(why) {}
  client_exit exit;
};

// A TLS failure retrying cannot fix, by OpenSSL's reason, or nothing for any other failure.
inline std::optional<cannot_get_in> unfixable_tls_failure(const std::system_error& error) {
  if (error.code().category() != asio::error::get_ssl_category()) return std::nullopt;
  const auto detail = " (" + error.code().message() + ")";
  switch (ERR_GET_REASON(static_cast<unsigned long>(error.code().value()))) {
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
      return cannot_get_in(client_exit::certificate_rejected,
                           "the aggregator requires a client certificate and this learner sent none" + detail);
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
      return cannot_get_in(client_exit::certificate_rejected, "the aggregator rejected this learner's certificate" + detail);
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_UNKNOWN_PROTOCOL:
      return cannot_get_in(client_exit::tls_mismatch,
                           "the aggregator does not speak TLS: it answered in plain TCP (is server_options::tls set?)" + detail);
    default: return std::nullopt;
  }
}

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
    std::uint32_t hopeless = 0;  // attempts in a row that failed for a cause retrying cannot fix
    while (!finished) {
      bool registered = false;
      std::optional<cannot_get_in> unfixable;
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
          std::error_code ec;
          co_await stream.async_handshake(asio::ssl::stream_base::client, asio::redirect_error(asio::use_awaitable, ec));
          if (ec && ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == SSL_R_CERTIFICATE_VERIFY_FAILED &&
              ec.category() == asio::error::get_ssl_category())
            throw cannot_get_in(client_exit::certificate_unverified,
                                std::string("could not verify the aggregator's certificate: ") +
                                    X509_verify_cert_error_string(SSL_get_verify_result(stream.native_handle())) +
                                    " (is client_options::tls trusting the aggregator's CA, and does its certificate "
                                    "name " + options.tls_server_name + "?)");
          if (ec) throw std::system_error(ec);
          registered = co_await serve(std::make_shared<connection<tls_stream>>(std::move(stream), peer));
        } else {
          registered = co_await serve(std::make_shared<connection<plain_stream>>(std::move(socket), peer));
        }
      } catch (const cannot_get_in& error) {
        unfixable = error;
      } catch (const protocol_version_error& error) {
        unfixable = cannot_get_in(client_exit::version_mismatch,
                                  "the aggregator speaks protocol version " + std::to_string(error.peer_version()) +
                                      "; this learner speaks version " + std::to_string(protocol_version));
      } catch (const std::system_error& error) {
        unfixable = unfixable_tls_failure(error);
        if (!unfixable && !finished) log(describe(error));
      } catch (const std::exception& error) {
        if (!finished) log(describe(error));
      }
      if (finished) break;
      hopeless = unfixable ? hopeless + 1 : 0;
      if (unfixable) {
        const auto of = options.give_up_after == 0 ? std::string() : " of " + std::to_string(options.give_up_after);
        log("cannot get in (attempt " + std::to_string(hopeless) + of + "): " + unfixable->what());
        if (options.give_up_after != 0 && hopeless >= options.give_up_after) {
          finish(unfixable->exit, std::string("giving up: ") + unfixable->what());
          break;
        }
      }
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
    // The learner speaks first, so an aggregator that requires TLS recognises a plain learner.
    const auto opening = make_frame(frame_type::opening, 0);
    co_await link->write_now(opening);
    auto challenge = co_await link->read_frame(std::max(payload_limit(frame_type::challenge, 0),
                                                        payload_limit(frame_type::refusal, 0)));
    if (challenge.header.type == frame_type::refusal) {
      const auto code = decode_refusal(challenge.payload);
      if (code == refusal_code::tls_required) throw cannot_get_in(client_exit::tls_mismatch, to_string(code));
      throw protocol_error(std::string("refused before the challenge: ") + to_string(code));
    }
    if (challenge.header.type != frame_type::challenge)
      throw protocol_error(std::string(to_string(challenge.header.type)) + " frame out of place: expected challenge");
    const auto nonce = decode_challenge(challenge.payload);
    // Named, not a temporary in the co_await: GCC 12 mishandles temporaries there.
    const auto greeting = make_frame(
        frame_type::hello, 0, encode_hello({learner.id(), prove(options.token, nonce, learner.id()), options.properties}));
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
      if (!finished) log("connection closed: " + reason);  // a finished run has said why
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
  // The aggregator refuses a hello beyond these bounds; say so here, not by retrying forever.
  const auto& bounds = hello_property_limits;
  if (options_.properties.size() > bounds.max_entries)
    throw configuration_error("a learner reports at most " + std::to_string(bounds.max_entries) + " properties; got " +
                              std::to_string(options_.properties.size()));
  for (const auto& [name, value] : options_.properties) {
    const auto* text = std::get_if<std::string>(&value);
    if (name.size() > bounds.max_string || (text && text->size() > bounds.max_string))
      throw configuration_error("property '" + flotilla::detail::printable(name, 64) + "' is longer than " +
                                std::to_string(bounds.max_string) + " bytes, the limit of a name or text");
  }
  const auto hello_bytes = encode_hello({learner_.id(), {}, options_.properties})->size();
  if (hello_bytes > payload_limit(frame_type::hello, 0))
    throw configuration_error("this learner's properties take " + flotilla::detail::grouped(hello_bytes) +
                              " bytes in its hello; the limit is " +
                              flotilla::detail::grouped(payload_limit(frame_type::hello, 0)));
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

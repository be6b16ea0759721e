#pragma once
// Shared pieces of the TCP transport tests: a log that tests can wait on, a raw socket peer that
// speaks (or breaks) the protocol byte by byte, learner clients on threads, and a small model.

#include <flotilla/flotilla.hpp>
#include <flotilla/models.hpp>
#include <flotilla/transport/tcp/learner_client.hpp>
#include <flotilla/transport/tcp/server_transport.hpp>

#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include <doctest/doctest.h>

#include <sys/socket.h>  // SO_LINGER, SO_RCVTIMEO: a reset and a bounded wait on the raw socket

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace tcp_test {

using namespace std::chrono_literals;
using model = flotilla::linear_regression<double>;
using params = model::parameters_type;
using server = flotilla::tcp::server_transport<params>;

/// Log lines from a transport, with a way to wait for one.
class captured_log {
 public:
  flotilla::tcp::log_function sink() {
    return [this](const std::string& line) {
      std::lock_guard lock(mutex_);
      lines_.push_back(line);
      changed_.notify_all();
    };
  }
  /// True once a line containing `needle` has been logged (waits up to `timeout`).
  bool wait_for(const std::string& needle, std::chrono::milliseconds timeout = 5s) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] {
      for (const auto& line : lines_)
        if (line.find(needle) != std::string::npos) return true;
      return false;
    });
  }
  std::string all() {
    std::lock_guard lock(mutex_);
    std::string out;
    for (const auto& line : lines_) out += line + "\n";
    return out;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::string> lines_;
};

/// Noise-free samples of y = 2 x0 - x1 + 1.
inline model::data_type line_data(std::size_t examples, std::uint64_t seed) {
  flotilla::random_engine engine(seed);
  model::data_type data{Eigen::MatrixXd(2, static_cast<Eigen::Index>(examples)),
                        Eigen::VectorXd(static_cast<Eigen::Index>(examples))};
  for (Eigen::Index i = 0; i < data.features.cols(); ++i) {
    data.features(0, i) = flotilla::standard_normal(engine);
    data.features(1, i) = flotilla::standard_normal(engine);
    data.targets(i) = 2 * data.features(0, i) - data.features(1, i) + 1;
  }
  return data;
}

/// A linear model whose fit can be slowed down, to make stragglers.
struct slow_model {
  model inner{2, {.learning_rate = 0.1, .epochs = 1, .batch_size = 0}};
  std::chrono::milliseconds delay{0};
  const params& parameters() const { return inner.parameters(); }
  void set_parameters(const params& p) { inner.set_parameters(p); }
  flotilla::local_result fit(const model::data_type& data, const flotilla::fit_config& config) {
    std::this_thread::sleep_for(delay);
    return inner.fit(data, config);
  }
};
using test_learner = flotilla::learner<slow_model, model::data_type>;

/// A learner client serving on its own thread until goodbye, refusal or destruction.
class client_thread {
 public:
  client_thread(flotilla::learner_id id, flotilla::tcp::client_options options,
                std::chrono::milliseconds delay = 0ms, std::size_t examples = 20)
      : learner_(id, slow_model{.delay = delay}, line_data(examples, id + 100)),
        client_(learner_, std::move(options)),
        thread_([this] { exit_ = client_.run(); }) {}
  ~client_thread() {
    if (!thread_.joinable()) return;
    client_.stop();
    thread_.join();
  }
  /// Waits for the client to end by itself (goodbye or refusal).
  flotilla::tcp::client_exit wait() {
    thread_.join();
    return exit_;
  }

 private:
  test_learner learner_;
  flotilla::tcp::learner_client<test_learner> client_;
  flotilla::tcp::client_exit exit_ = flotilla::tcp::client_exit::stopped;
  std::thread thread_;
};

inline flotilla::tcp::server_options quick_server(captured_log& log) {
  return {.heartbeat_interval = 100ms, .heartbeat_timeout = 2000ms, .handshake_timeout = 2000ms,
          .failure_backoff = 20ms, .log = log.sink()};
}

inline flotilla::tcp::client_options quick_client(std::uint16_t port, captured_log& log) {
  return {.port = port, .heartbeat_interval = 100ms, .heartbeat_timeout = 2000ms, .first_backoff = 50ms,
          .max_backoff = 200ms, .log = log.sink()};
}

/// A frame's payload as one byte vector (its pieces joined).
inline std::vector<std::byte> payload_of(const flotilla::tcp::outgoing_frame& frame) {
  std::vector<std::byte> bytes;
  for (const auto piece : frame.payload) bytes.insert(bytes.end(), piece.begin(), piece.end());
  return bytes;
}

/// A fit reply frame for `round` carrying `p`, as learner `id` would send it.
inline flotilla::tcp::outgoing_frame reply_frame(flotilla::learner_id id, std::uint64_t round, params p) {
  flotilla::reply<params> answer{id, flotilla::task_kind::fit, round, {10, {}}, std::move(p)};
  return flotilla::tcp::make_frame(flotilla::tcp::frame_type::reply, round,
                                   std::make_shared<const flotilla::byte_buffer>(flotilla::encode(answer)));
}

/// Sends a round-1 fit task carrying `global` straight through the transport, no coordinator.
inline void send_fit(server& transport, const params& global, std::vector<flotilla::learner_id> to) {
  transport.send({.kind = flotilla::task_kind::fit, .round = 1, .parameters = std::make_shared<const params>(global),
                  .config = {}},
                 to);
}

/// A raw TCP peer that writes whatever bytes a test gives it.
class raw_peer {
 public:
  explicit raw_peer(std::uint16_t port) {
    socket_.connect({asio::ip::make_address("127.0.0.1"), port});
    timeval limit{5, 0};  // a test that expected a close never hangs
    setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  }
  void write(std::span<const std::byte> bytes) { asio::write(socket_, asio::buffer(bytes.data(), bytes.size())); }
  void write_frame(const flotilla::tcp::outgoing_frame& frame) {
    write(frame.header);
    for (const auto piece : frame.payload) write(piece);
  }
  struct received {
    flotilla::tcp::frame_header header;
    std::vector<std::byte> payload;
  };
  received read_frame() {
    std::array<std::byte, flotilla::tcp::header_size> header{};
    asio::read(socket_, asio::buffer(header));
    received next{flotilla::tcp::decode_header(header, std::uint64_t{1} << 32), {}};
    next.payload.resize(next.header.payload_size);
    asio::read(socket_, asio::buffer(next.payload));
    return next;
  }
  /// Sends the opening frame a learner starts every connection with.
  void send_opening() {
    write_frame(flotilla::tcp::make_frame(flotilla::tcp::frame_type::opening, 0));
    opened_ = true;
  }
  /// Reads the aggregator's challenge (after the opening, which it sends first if no frame was).
  flotilla::tcp::challenge_nonce read_challenge() {
    if (!opened_) send_opening();
    const auto first = read_frame();
    REQUIRE(first.header.type == flotilla::tcp::frame_type::challenge);
    return flotilla::tcp::decode_challenge(first.payload);
  }
  /// Answers the challenge with a hello for `id`, proving `token`.
  void send_hello(flotilla::learner_id id, const std::string& token = "") {
    const auto nonce = read_challenge();
    write_frame(flotilla::tcp::make_frame(flotilla::tcp::frame_type::hello, 0,
                                          flotilla::tcp::encode_hello({id, flotilla::tcp::prove(token, nonce, id)})));
  }
  /// Sends a hello and expects a welcome.
  void register_as(flotilla::learner_id id, const std::string& token = "") {
    send_hello(id, token);
    REQUIRE(read_frame().header.type == flotilla::tcp::frame_type::welcome);
  }
  /// Reads frames, skipping heartbeats, until one of another type arrives.
  received next_non_heartbeat() {
    for (;;) {
      auto next = read_frame();
      if (next.header.type != flotilla::tcp::frame_type::heartbeat) return next;
    }
  }
  /// Closes with a TCP reset instead of an orderly shutdown.
  void reset() {
    linger hard{1, 0};
    setsockopt(socket_.native_handle(), SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    socket_.close();
  }

 private:
  asio::io_context io_;
  asio::ip::tcp::socket socket_{io_};
  bool opened_ = false;
};

}  // namespace tcp_test

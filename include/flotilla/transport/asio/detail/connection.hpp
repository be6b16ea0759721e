#pragma once
// One framed connection over a plain or TLS stream, shared by the aggregator and learner sides:
// a queue of outgoing frames drained by one writer coroutine, frame reading in chunks with
// liveness tracking, heartbeats, and closing with a reason. Everything runs on one io_context
// thread, so no member needs a lock.

#include "flotilla/transport/asio/detail/asio_config.hpp"  // first: coroutine support under Clang

#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/read.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "flotilla/errors.hpp"
#include "flotilla/transport/asio/frame.hpp"
#include "flotilla/transport/asio/protocol.hpp"

namespace flotilla::tcp::detail {

using clock = std::chrono::steady_clock;

/// A frame as read: its header and its checked payload, which lives in the connection's receive
/// buffer until the next read (decode it before reading again).
struct incoming_frame {
  frame_header header;
  std::span<const std::byte> payload;
};

template <class Stream>
class connection : public std::enable_shared_from_this<connection<Stream>> {
 public:
  using on_close_function = std::function<void(const std::string& reason)>;

  connection(Stream stream, std::string peer)
      : stream_(std::move(stream)), wake_(stream_.get_executor()), peer_(std::move(peer)) {
    wake_.expires_at(clock::time_point::max());
  }

  Stream& stream() { return stream_; }
  [[nodiscard]] const std::string& peer() const { return peer_; }
  [[nodiscard]] bool is_open() const { return open_; }
  [[nodiscard]] bool idle_writer() const { return queue_.empty() && !writing_; }

  /// Called once, with the reason, when the connection closes for any cause.
  void on_close(on_close_function handler) { on_close_ = std::move(handler); }

  /// Queues a frame; the writer sends frames in order.
  void send(outgoing_frame frame) {
    if (!open_) return;
    queue_.push_back(std::move(frame));
    wake_.cancel();
  }

  /// Closes the socket (cancelling pending reads and writes) and reports the reason once.
  void close(const std::string& reason) {
    if (!open_) return;
    open_ = false;
    std::error_code ignored;
    stream_.lowest_layer().shutdown(asio::socket_base::shutdown_both, ignored);
    stream_.lowest_layer().close(ignored);
    wake_.cancel();
    if (on_close_) {
      auto handler = std::move(on_close_);
      handler(reason);
    }
  }

  /// Reads and checks a frame header (see decode_header): nothing is allocated for a payload
  /// before its header has passed.
  asio::awaitable<frame_header> read_header(std::uint64_t max_payload) {
    std::array<std::byte, header_size> header_bytes{};
    co_await asio::async_read(stream_, asio::buffer(header_bytes), asio::use_awaitable);
    last_received_ = clock::now();
    co_return decode_header(header_bytes, max_payload);
  }

  /// Reads a header's payload into a buffer reused from frame to frame and checks its checksum.
  asio::awaitable<std::span<const std::byte>> read_payload(const frame_header& header) {
    std::uint32_t checksum = 0;
    receive_buffer_.resize(static_cast<std::size_t>(header.payload_size));
    co_await receive_into(receive_buffer_, checksum);
    verify_checksum(header, checksum);
    co_return receive_buffer_;
  }

  /// Reads one whole frame: header, then payload.
  asio::awaitable<incoming_frame> read_frame(std::uint64_t max_payload) {
    const auto header = co_await read_header(max_payload);
    const auto payload = co_await read_payload(header);
    co_return incoming_frame{header, payload};
  }

  /// Reads a payload that decodes to a message whose model-sized tail is received in place.
  /// `start(first, total)` decodes from the first chunk (an optional started_decode); the rest
  /// of the bytes then go straight into the message's parameters. When the start needs the whole
  /// payload, it is read into the receive buffer and decoded by `whole(payload)`. Either way the
  /// message is returned only once the checksum has passed. A payload that does not decode is a
  /// protocol_error naming `what` ("task", "reply").
  template <class Start, class Whole>
  asio::awaitable<std::invoke_result_t<Whole, std::span<const std::byte>>> read_message(const frame_header& header,
                                                                                        const char* what, Start start,
                                                                                        Whole whole) {
    const auto size = static_cast<std::size_t>(header.payload_size);
    const auto decoding = [what](auto&& decode) {
      try {
        return decode();
      } catch (const decode_error& error) {
        throw protocol_error(std::string(what) + " payload does not decode: " + error.what());
      }
    };
    std::uint32_t checksum = 0;
    receive_buffer_.resize(std::min(size, chunk_size));
    co_await receive_into(receive_buffer_, checksum);
    auto started = decoding([&] { return start(std::span<const std::byte>(receive_buffer_), header.payload_size); });
    if (started) {
      co_await receive_into(started->rest, checksum);
      verify_checksum(header, checksum);
      co_return std::move(started->message);
    }
    const auto arrived = receive_buffer_.size();
    receive_buffer_.resize(size);
    co_await receive_into(std::span(receive_buffer_).subspan(arrived), checksum);
    verify_checksum(header, checksum);
    co_return decoding([&] { return whole(std::span<const std::byte>(receive_buffer_)); });
  }

  /// Sends queued frames until the connection closes. Header and payload pieces go out as one
  /// gathered write, straight from the (possibly shared) memory they live in.
  asio::awaitable<void> write_loop() {
    auto self = this->shared_from_this();
    std::vector<asio::const_buffer> buffers;
    try {
      while (open_) {
        if (queue_.empty()) {
          std::error_code ec;
          co_await wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
          continue;
        }
        writing_ = true;
        const outgoing_frame frame = std::move(queue_.front());
        queue_.pop_front();
        co_await asio::async_write(stream_, gather(frame, buffers), asio::use_awaitable);
        writing_ = false;
      }
    } catch (const std::system_error& error) {
      writing_ = false;
      close("write failed: " + error.code().message());
    }
  }

  /// Writes one frame at once, bypassing the queue: for the handshake, before start().
  asio::awaitable<void> write_now(const outgoing_frame& frame) {
    std::vector<asio::const_buffer> buffers;
    co_await asio::async_write(stream_, gather(frame, buffers), asio::use_awaitable);
  }

  /// Sends a heartbeat every `interval` and closes the connection when nothing has arrived for
  /// `timeout` (a dead or silent peer).
  asio::awaitable<void> heartbeat_loop(std::chrono::milliseconds interval, std::chrono::milliseconds timeout) {
    auto self = this->shared_from_this();
    asio::steady_timer timer(stream_.get_executor());
    last_received_ = clock::now();
    while (open_) {
      timer.expires_after(interval);
      std::error_code ec;
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (!open_) break;
      if (clock::now() - last_received_ > timeout) {
        close("no frame for " + std::to_string(timeout.count()) + " ms (heartbeat timeout)");
        break;
      }
      if (queue_.empty()) send(make_frame(frame_type::heartbeat, 0));
    }
  }

  /// Starts the writer and the heartbeat on the connection's executor.
  void start(std::chrono::milliseconds heartbeat_interval, std::chrono::milliseconds heartbeat_timeout) {
    auto self = this->shared_from_this();
    asio::co_spawn(stream_.get_executor(), [self] { return self->write_loop(); }, asio::detached);
    asio::co_spawn(stream_.get_executor(),
                   [self, heartbeat_interval, heartbeat_timeout] {
                     return self->heartbeat_loop(heartbeat_interval, heartbeat_timeout);
                   },
                   asio::detached);
  }

 private:
  static constexpr std::size_t chunk_size = std::size_t{1} << 20;

  static std::vector<asio::const_buffer>& gather(const outgoing_frame& frame, std::vector<asio::const_buffer>& buffers) {
    buffers.assign({asio::buffer(frame.header)});
    for (const auto piece : frame.payload) buffers.push_back(asio::buffer(piece.data(), piece.size()));
    return buffers;
  }

  // Reads exactly `destination.size()` bytes in chunks, each counting as a sign of life and
  // extending `checksum` while it is still in cache.
  asio::awaitable<void> receive_into(std::span<std::byte> destination, std::uint32_t& checksum) {
    for (std::size_t offset = 0; offset < destination.size();) {
      const auto piece = destination.subspan(offset, std::min(chunk_size, destination.size() - offset));
      co_await asio::async_read(stream_, asio::buffer(piece.data(), piece.size()), asio::use_awaitable);
      checksum = crc32c(piece, checksum);
      offset += piece.size();
      last_received_ = clock::now();
    }
  }

  Stream stream_;
  asio::steady_timer wake_;
  std::string peer_;
  std::deque<outgoing_frame> queue_;
  byte_buffer receive_buffer_;
  bool open_ = true;
  bool writing_ = false;
  clock::time_point last_received_ = clock::now();
  on_close_function on_close_;
};

/// "127.0.0.1:40312", or "unknown peer" once the socket is gone.
template <class Socket>
std::string describe_peer(const Socket& socket) {
  std::error_code ec;
  const auto endpoint = socket.remote_endpoint(ec);
  if (ec) return "unknown peer";
  return endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
}

}  // namespace flotilla::tcp::detail

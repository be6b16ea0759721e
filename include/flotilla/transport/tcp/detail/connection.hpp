#pragma once
// One framed connection over a plain or TLS stream, shared by the aggregator and learner sides:
// a bounded queue of outgoing frames drained by one writer coroutine, frame reading in pieces
// with liveness judged by progress, heartbeats, write deadlines, and closing with a reason.
// Everything runs on one io_context thread, so no member needs a lock; the byte meter it
// reports its buffers to is shared and atomic.

#include "flotilla/transport/tcp/detail/asio_config.hpp"  // first: coroutine support under Clang

#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/read.hpp>
#include <asio/redirect_error.hpp>
#include <asio/socket_base.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "flotilla/detail/text.hpp"
#include "flotilla/errors.hpp"
#include "flotilla/transport/tcp/frame.hpp"
#include "flotilla/transport/tcp/protocol.hpp"

namespace flotilla::tcp::detail {

using clock = std::chrono::steady_clock;

/// Bytes a transport holds on behalf of its peers (receive buffers, replies being received and
/// waiting for the coordinator), now and at most: the accounting memory bounds are tested by.
class byte_meter {
 public:
  void add(std::int64_t bytes) {
    const auto now = current_.fetch_add(bytes) + bytes;
    for (auto seen = peak_.load(); now > seen && !peak_.compare_exchange_weak(seen, now);) {
    }
  }
  void remove(std::int64_t bytes) { current_.fetch_sub(bytes); }
  [[nodiscard]] std::int64_t current() const { return current_.load(); }
  [[nodiscard]] std::int64_t peak() const { return peak_.load(); }

 private:
  std::atomic<std::int64_t> current_{0};
  std::atomic<std::int64_t> peak_{0};
};

/// What a connection tolerates of its peer, from the side's options.
struct connection_limits {
  std::chrono::milliseconds heartbeat_interval{1000};
  /// Nothing received for this long (not a byte, while a frame is expected) closes the connection.
  std::chrono::milliseconds heartbeat_timeout{5000};
  /// A frame being written that makes no progress for this long closes the connection.
  std::chrono::milliseconds write_timeout{10000};
  /// A frame arriving slower than this on average, once it has taken a heartbeat timeout, closes
  /// the connection (a trickle that would hold it open forever).
  std::uint64_t min_receive_rate = 1024;
  /// Bytes of frames queued for sending, beyond the one being written.
  std::uint64_t max_queued_bytes = std::uint64_t{1} << 32;
};

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

  connection(Stream stream, std::string peer, std::shared_ptr<byte_meter> meter = nullptr)
      : stream_(std::move(stream)), wake_(stream_.get_executor()), peer_(std::move(peer)), meter_(std::move(meter)) {
    wake_.expires_at(clock::time_point::max());
  }
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;
  ~connection() { release_receive_buffer(); }

  Stream& stream() { return stream_; }
  [[nodiscard]] const std::string& peer() const { return peer_; }
  [[nodiscard]] bool is_open() const { return open_; }
  [[nodiscard]] bool idle_writer() const { return queue_.empty() && !writing_; }

  /// Called once, with the reason, when the connection closes for any cause.
  void on_close(on_close_function handler) { on_close_ = std::move(handler); }

  /// When the peer was last heard from (any byte).
  [[nodiscard]] clock::time_point last_received() const { return last_received_; }

  /// Queues a frame; the writer sends frames in order. A peer that lets the queue grow past
  /// `max_queued_bytes` is not reading: the connection is closed.
  void send(outgoing_frame frame) {
    if (!open_) return;
    const auto size = frame_size(frame);
    if (!queue_.empty() && queued_bytes_ + size > limits_.max_queued_bytes) {
      close("send queue over " + flotilla::detail::grouped(limits_.max_queued_bytes) +
            " bytes: the peer is not reading");
      return;
    }
    queued_bytes_ += size;
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
    std::uint32_t ignored = 0;
    co_await receive_into(header_bytes, ignored);
    co_return decode_header(header_bytes, max_payload);
  }

  /// Reads a header's payload into a buffer reused from frame to frame and checks its checksum.
  /// A buffer grown past one chunk for a large frame is given back afterwards.
  asio::awaitable<std::span<const std::byte>> read_payload(const frame_header& header) {
    std::uint32_t checksum = 0;
    resize_receive_buffer(static_cast<std::size_t>(header.payload_size));
    begin_payload(header.payload_size);
    co_await receive_into(receive_buffer_, checksum);
    end_payload();
    verify_checksum(header, checksum);
    co_return receive_buffer_;
  }

  /// Stops the heartbeat timeout while this side deliberately does not read (backpressure).
  void pause_liveness(bool paused) {
    paused_ = paused;
    last_received_ = clock::now();
  }

  /// Reads one whole frame: header, then payload.
  asio::awaitable<incoming_frame> read_frame(std::uint64_t max_payload) {
    const auto header = co_await read_header(max_payload);
    const auto payload = co_await read_payload(header);
    co_return incoming_frame{header, payload};
  }

  /// Reads a payload that decodes to a message whose model-sized tail is received in place.
  /// `start(first, total)` decodes from the first chunk (an optional started_decode); the rest()
  /// of the bytes then go straight into the message's parameters. When the start needs the whole
  /// payload, it is read into the receive buffer and decoded by `whole(payload)`. Either way the
  /// message is returned only once the checksum has passed. `check(message)` runs as soon as the
  /// message is decoded, before its tail is read when it can be: a message this side will not take
  /// (another model's layout) is refused by throwing protocol_error before its scalars arrive. A
  /// payload that does not decode is a protocol_error naming `what` ("task", "reply").
  template <class Start, class Whole, class Check>
  asio::awaitable<std::invoke_result_t<Whole, std::span<const std::byte>>> read_message(const frame_header& header,
                                                                                        const char* what, Start start,
                                                                                        Whole whole, Check check) {
    const auto size = static_cast<std::size_t>(header.payload_size);
    const auto decoding = [what](auto&& decode) {
      try {
        return decode();
      } catch (const decode_error& error) {
        throw protocol_error(std::string(what) + " payload does not decode: " + error.what());
      }
    };
    std::uint32_t checksum = 0;
    resize_receive_buffer(std::min(size, chunk_size));
    begin_payload(size);
    co_await receive_into(receive_buffer_, checksum);
    auto started = decoding([&] { return start(std::span<const std::byte>(receive_buffer_), header.payload_size); });
    if (started) {
      check(started->message);
      shrink_receive_buffer();  // the first chunk is decoded; the rest goes into the message
      co_await receive_into(started->rest(), checksum);
      end_payload();
      verify_checksum(header, checksum);
      co_return std::move(started->message);
    }
    const auto arrived = receive_buffer_.size();
    resize_receive_buffer(size);
    co_await receive_into(std::span(receive_buffer_).subspan(arrived), checksum);
    end_payload();
    verify_checksum(header, checksum);
    auto message = decoding([&] { return whole(std::span<const std::byte>(receive_buffer_)); });
    check(message);
    shrink_receive_buffer();
    co_return message;
  }

  /// Sends queued frames until the connection closes. Header and payload pieces go out as
  /// gathered writes of at most one chunk each, straight from the (possibly shared) memory they
  /// live in; each write that completes is progress for the write deadline.
  asio::awaitable<void> write_loop() {
    auto self = this->shared_from_this();
    try {
      while (open_) {
        if (queue_.empty()) {
          std::error_code ec;
          co_await wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
          continue;
        }
        writing_ = true;
        last_write_progress_ = clock::now();
        const outgoing_frame frame = std::move(queue_.front());
        queue_.pop_front();
        co_await write_frame(frame);
        queued_bytes_ -= frame_size(frame);
        writing_ = false;
      }
    } catch (const std::system_error& error) {
      writing_ = false;
      close("write failed: " + error.code().message());
    }
  }

  /// Writes one frame at once, bypassing the queue: for the handshake, before start().
  asio::awaitable<void> write_now(const outgoing_frame& frame) { co_await write_frame(frame); }

  /// Sends a heartbeat every interval, and closes the connection when the peer is silent, a
  /// frame trickles in below the minimum rate, or a write makes no progress.
  asio::awaitable<void> heartbeat_loop() {
    auto self = this->shared_from_this();
    asio::steady_timer timer(stream_.get_executor());
    last_received_ = clock::now();
    while (open_) {
      timer.expires_after(limits_.heartbeat_interval);
      std::error_code ec;
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (!open_) break;
      if (auto problem = unhealthy(clock::now())) {
        close(*problem);
        break;
      }
      if (queue_.empty() && !writing_) send(make_frame(frame_type::heartbeat, 0));
    }
  }

  /// Starts the writer and the heartbeat on the connection's executor.
  void start(const connection_limits& limits) {
    limits_ = limits;
    auto self = this->shared_from_this();
    asio::co_spawn(stream_.get_executor(), [self] { return self->write_loop(); }, asio::detached);
    asio::co_spawn(stream_.get_executor(), [self] { return self->heartbeat_loop(); }, asio::detached);
  }

 private:
  static constexpr std::size_t chunk_size = std::size_t{1} << 20;
  // A receive buffer larger than this is given back after its frame: idle connections hold little.
  static constexpr std::size_t small_buffer = std::size_t{64} << 10;

  static std::uint64_t frame_size(const outgoing_frame& frame) {
    std::uint64_t size = header_size;
    for (const auto piece : frame.payload) size += piece.size();
    return size;
  }

  // Why the connection should close now, or nothing.
  std::optional<std::string> unhealthy(clock::time_point now) const {
    using std::chrono::duration_cast;
    using std::chrono::milliseconds;
    if (!paused_ && now - last_received_ > limits_.heartbeat_timeout)
      return "nothing received for " + std::to_string(limits_.heartbeat_timeout.count()) + " ms (heartbeat timeout)";
    if (writing_ && now - last_write_progress_ > limits_.write_timeout)
      return "no write progress for " + std::to_string(limits_.write_timeout.count()) + " ms: the peer is not reading";
    if (frame_bytes_expected_ > 0 && !paused_) {
      const auto taken = duration_cast<milliseconds>(now - frame_started_).count();
      if (taken > limits_.heartbeat_timeout.count() &&
          frame_bytes_received_ * 1000 < limits_.min_receive_rate * std::uint64_t(taken))
        return "frame arriving at " + flotilla::detail::grouped(frame_bytes_received_ * 1000 / std::uint64_t(taken)) +
               " bytes/s, below the minimum of " + flotilla::detail::grouped(limits_.min_receive_rate);
    }
    return std::nullopt;
  }

  // Writes a frame in gathered writes of at most one chunk each.
  asio::awaitable<void> write_frame(const outgoing_frame& frame) {
    std::vector<asio::const_buffer> all{asio::buffer(frame.header)};
    for (const auto piece : frame.payload)
      for (std::size_t at = 0; at < piece.size(); at += chunk_size)
        all.push_back(asio::buffer(piece.data() + at, std::min(chunk_size, piece.size() - at)));
    std::vector<asio::const_buffer> batch;
    for (std::size_t next = 0; next < all.size();) {
      batch.clear();
      std::size_t bytes = 0;
      while (next < all.size() && (batch.empty() || bytes + all[next].size() <= chunk_size)) {
        bytes += all[next].size();
        batch.push_back(all[next++]);
      }
      co_await asio::async_write(stream_, batch, asio::use_awaitable);
      last_write_progress_ = clock::now();
    }
  }

  // Reads exactly `destination.size()` bytes, however they trickle in: every arrival is a sign
  // of life, and extends `checksum` while it is still in cache.
  asio::awaitable<void> receive_into(std::span<std::byte> destination, std::uint32_t& checksum) {
    for (std::size_t offset = 0; offset < destination.size();) {
      const auto room = destination.subspan(offset, std::min(chunk_size, destination.size() - offset));
      const auto got = co_await stream_.async_read_some(asio::buffer(room.data(), room.size()), asio::use_awaitable);
      checksum = flotilla::detail::crc32c(room.first(got), checksum);
      offset += got;
      frame_bytes_received_ += got;
      last_received_ = clock::now();
    }
  }

  // A payload of `size` bytes starts arriving: its average rate is watched until end_payload().
  void begin_payload(std::uint64_t size) {
    frame_started_ = clock::now();
    frame_bytes_expected_ = size;
    frame_bytes_received_ = 0;
  }
  void end_payload() { frame_bytes_expected_ = 0; }

  void resize_receive_buffer(std::size_t size) {
    const auto before = receive_buffer_.capacity();
    receive_buffer_.resize(size);
    if (meter_ && receive_buffer_.capacity() != before)
      meter_->add(std::int64_t(receive_buffer_.capacity()) - std::int64_t(before));
  }
  void shrink_receive_buffer() {
    if (receive_buffer_.capacity() > small_buffer) release_receive_buffer();
  }
  void release_receive_buffer() {
    if (meter_) meter_->remove(std::int64_t(receive_buffer_.capacity()));
    byte_buffer().swap(receive_buffer_);
  }

  Stream stream_;
  asio::steady_timer wake_;
  std::string peer_;
  std::shared_ptr<byte_meter> meter_;
  connection_limits limits_;
  std::deque<outgoing_frame> queue_;
  std::uint64_t queued_bytes_ = 0;
  byte_buffer receive_buffer_;
  bool open_ = true;
  bool writing_ = false;
  bool paused_ = false;
  clock::time_point last_received_ = clock::now();
  clock::time_point last_write_progress_ = clock::now();
  clock::time_point frame_started_ = clock::now();
  std::uint64_t frame_bytes_expected_ = 0;
  std::uint64_t frame_bytes_received_ = 0;
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

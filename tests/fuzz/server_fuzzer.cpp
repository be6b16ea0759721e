// libFuzzer target that drives a whole aggregator-side TCP transport over real loopback sockets.
// The input's first byte picks how many connections (1 to 4) and the rest is cut into that many
// byte streams, each written to its own connection and then closed; the streams are blind (they
// cannot read the challenge), which an aggregator without tokens accepts, so registered peers
// are reached too. After each input the transport's own accounting must show that what it ever
// held stayed within what its configuration allows, whatever the streams announced. A crash, a
// leak, undefined behaviour or a bound broken is a finding.
#include <flotilla/parameters.hpp>
#include <flotilla/transport/tcp/server_transport.hpp>

#include <sys/socket.h>  // SO_LINGER: a reset, so no connection lingers in TIME_WAIT

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

namespace {

using params = flotilla::parameters<float>;

// One transport for the whole run. It is deleted by an exit handler registered after OpenSSL's
// and Asio's own: handlers run in reverse order, so its thread stops before they clean up.
flotilla::tcp::server_transport<params>* the_server = nullptr;

flotilla::tcp::server_transport<params>& transport() {
  if (!the_server) {
    the_server = new flotilla::tcp::server_transport<params>({
        .heartbeat_interval = std::chrono::milliseconds(50),
        .heartbeat_timeout = std::chrono::milliseconds(500),
        .handshake_timeout = std::chrono::milliseconds(500),
        .max_unauthenticated_per_address = 64,
        .failure_backoff = std::chrono::milliseconds(0),
        .log = nullptr,
    });
    std::atexit([] { delete std::exchange(the_server, nullptr); });
  }
  return *the_server;
}

// Control frames are at most 1 KiB and no task is ever pending, so no connection may make the
// transport hold more than a small receive buffer: 64 KiB each, with a wide margin.
constexpr std::int64_t bound = 4 * (64 << 10);

}  // namespace

// Before the first input: the transport's thread draws its first challenge, so OpenSSL's
// per-thread state (kept until the thread ends) is not mistaken for an input's leak.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  auto& server = transport();
  asio::io_context io;
  asio::ip::tcp::socket socket(io);
  socket.connect({asio::ip::make_address("127.0.0.1"), server.port()});
  const auto opening = flotilla::tcp::make_frame(flotilla::tcp::frame_type::opening, 0);
  asio::write(socket, asio::buffer(opening.header));  // a learner speaks first
  std::array<std::byte, flotilla::tcp::header_size + flotilla::tcp::challenge_size> challenge{};
  asio::read(socket, asio::buffer(challenge));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  auto& server = transport();
  const std::size_t streams = 1 + data[0] % 4;
  const std::size_t length = (size - 1) / streams;
  asio::io_context io;
  std::vector<asio::ip::tcp::socket> sockets;
  for (std::size_t i = 0; i < streams; ++i) {
    sockets.emplace_back(io);
    std::error_code ec;
    sockets.back().connect({asio::ip::make_address("127.0.0.1"), server.port()}, ec);
    if (ec) return 0;
    const auto* begin = data + 1 + i * length;
    const auto count = i + 1 == streams ? size - 1 - i * length : length;
    asio::write(sockets.back(), asio::buffer(begin, count), ec);  // the server may close early
  }
  for (auto& socket : sockets) {
    linger hard{1, 0};
    setsockopt(socket.native_handle(), SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    std::error_code ec;
    socket.close(ec);
  }
  // Wait until the transport has seen every connection go.
  for (int i = 0; i < 2000; ++i) {
    const auto now = server.statistics();
    if (now.unauthenticated_connections == 0 && server.connected().empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const auto held = server.statistics();
  if (held.peak_buffered_bytes > bound || held.waiting_bytes != 0) __builtin_trap();
  while (server.receive(flotilla::deadline_clock::now())) {
  }
  return 0;
}

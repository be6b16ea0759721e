// The TCP transport against hostile peers, one finding of the security review per test, each
// with real sockets: what a peer announces never sizes the aggregator's memory, unauthenticated
// connections are capped, a captured hello cannot be replayed, and so on. Memory bounds are
// asserted through the transport's own accounting (statistics()), never timing or RSS.
#include <flotilla/transport/tcp/server_transport.hpp>

#include "tcp_support.hpp"

#include <sys/resource.h>  // getrlimit, setrlimit: running out of descriptors
#include <fcntl.h>         // fcntl: which descriptors are open

#include <array>
#include <future>
#include <vector>

using namespace tcp_test;
using flotilla::tcp::frame_type;
using flotilla::tcp::make_frame;

namespace {

params large_model(std::size_t scalars) { return params(flotilla::tensor_layout({{"w", {scalars}}})); }

}  // namespace

TEST_CASE("the aggregator refuses to listen beyond loopback without authentication unless told to") {
  captured_log log;
  auto options = quick_server(log);
  options.address = "0.0.0.0";
  CHECK_THROWS_WITH_AS(server{options}, doctest::Contains("refusing to listen on 0.0.0.0 without authentication"),
                       flotilla::configuration_error);
  options.tokens = {{1, "secret"}};
  { server with_tokens(options); }
  CHECK(log.wait_for("warning: tokens without TLS"));
  options.tokens.clear();
  options.insecure_allow_unauthenticated_network = true;
  { server opened(options); }
}

TEST_CASE("a frame that should carry nothing or little is refused from its header, before any allocation") {
  captured_log log;
  server transport(quick_server(log));
  raw_peer peer(transport.port());
  peer.register_as(1);
  peer.write(flotilla::tcp::encode_header({frame_type::heartbeat, 0, std::uint64_t{1} << 32, 0}));
  CHECK(log.wait_for("disconnected: protocol error: heartbeat frame announces 4,294,967,296 payload bytes; the limit "
                     "is 0"));
  CHECK(transport.statistics().peak_buffered_bytes < 64 << 10);
}

TEST_CASE("a reply is bounded by the task pending for its learner") {
  captured_log log;
  server transport(quick_server(log));
  raw_peer peer(transport.port());
  peer.register_as(1);
  REQUIRE(flotilla::wait_for_learners(transport, 1, 5s));
  SUBCASE("no task pending: refused from the header") {
    peer.write(flotilla::tcp::encode_header({frame_type::reply, 1, 1 << 20, 0}));
    CHECK(log.wait_for("protocol error: reply frame for round 1 with no task pending for this learner"));
  }
  SUBCASE("a first chunk that declares a far larger model: refused before room is made for it") {
    const auto global = large_model(1000);
    send_fit(transport, global, {1});
    REQUIRE(peer.next_non_heartbeat().header.type == frame_type::task);
    // The header is within the task's allowance; the payload claims 1,073,741,804 scalars.
    auto payload = std::make_shared<flotilla::byte_buffer>(
        flotilla::encode(flotilla::reply<params>{1, flotilla::task_kind::fit, 1, {10, {}}, large_model(100)}));
    const auto frame = make_frame(frame_type::reply, 1, payload);
    auto bytes = payload_of(frame);
    // Rewrite the tensor's dimension and the scalar count (the last two 8-byte fields before the scalars).
    const std::uint64_t claimed = 1'073'741'804;
    const auto at = bytes.size() - 100 * sizeof(double) - 16;
    for (int i = 0; i < 8; ++i) bytes[at + i] = bytes[at + 8 + i] = std::byte(claimed >> (8 * i));
    peer.write(flotilla::tcp::encode_header({frame_type::reply, 1, bytes.size(), flotilla::detail::crc32c(bytes)}));
    peer.write(bytes);
    CHECK(log.wait_for("protocol error: reply payload does not decode: tensor 'w' has more than 1,000 scalars"));
    CHECK(transport.statistics().peak_buffered_bytes < 2 << 20);
  }
}

TEST_CASE("connections that have not authenticated are capped per address and in total") {
  captured_log log;
  auto options = quick_server(log);
  options.max_unauthenticated_per_address = 3;
  options.handshake_timeout = 500ms;
  server transport(options);
  std::vector<std::unique_ptr<raw_peer>> idle;
  for (int i = 0; i < 6; ++i) idle.push_back(std::make_unique<raw_peer>(transport.port()));
  CHECK(log.wait_for("connections from this address are already authenticating (the limit)"));
  for (int i = 0; i < 200 && transport.statistics().connections_turned_away < 3; ++i) std::this_thread::sleep_for(10ms);
  const auto held = transport.statistics();
  CHECK(held.unauthenticated_connections == 3);
  CHECK(held.connections_turned_away == 3);
  // Once the idle ones time out, a real learner gets in.
  client_thread learner(1, quick_client(transport.port(), log));
  CHECK(flotilla::wait_for_learners(transport, 1, 5s));
}

TEST_CASE("a captured hello cannot be replayed on another connection") {
  captured_log log;
  auto options = quick_server(log);
  options.tokens = {{1, "secret"}};
  server transport(options);
  raw_peer real(transport.port());
  const auto nonce = real.read_challenge();
  const auto captured = make_frame(frame_type::hello, 0,
                                   flotilla::tcp::encode_hello({1, flotilla::tcp::prove("secret", nonce, 1)}));
  real.write_frame(captured);
  REQUIRE(real.read_frame().header.type == frame_type::welcome);

  raw_peer replay(transport.port());
  (void)replay.read_challenge();  // a fresh nonce, which the captured proof does not answer
  replay.write_frame(captured);
  const auto answer = replay.read_frame();
  REQUIRE(answer.header.type == frame_type::refusal);
  CHECK(flotilla::tcp::decode_refusal(answer.payload) == flotilla::tcp::refusal_code::authentication_failed);
  CHECK(log.wait_for("refused learner 1 from 127.0.0.1:"));
  CHECK(log.wait_for(": wrong token proof"));
  CHECK(transport.connected() == std::vector<flotilla::learner_id>{1});
}

TEST_CASE("an address that failed to authenticate is turned away for a while") {
  captured_log log;
  auto options = quick_server(log);
  options.tokens = {{1, "secret"}};
  options.failure_backoff = 2000ms;
  server transport(options);
  {
    raw_peer guesser(transport.port());
    guesser.send_hello(1, "guess");
    REQUIRE(guesser.read_frame().header.type == frame_type::refusal);
  }
  raw_peer again(transport.port());
  CHECK(log.wait_for("closed at once: backing off after 1 failed authentications"));
  CHECK(transport.statistics().connections_turned_away == 1);
  CHECK(transport.statistics().authentication_failures == 1);
}

TEST_CASE("a live connection is not taken over; a second connection under its id is refused") {
  captured_log log;
  server transport(quick_server(log));
  client_thread live(1, quick_client(transport.port(), log));
  REQUIRE(flotilla::wait_for_learners(transport, 1, 5s));
  raw_peer intruder(transport.port());
  intruder.send_hello(1);
  const auto answer = intruder.read_frame();
  REQUIRE(answer.header.type == frame_type::refusal);
  CHECK(flotilla::tcp::decode_refusal(answer.payload) == flotilla::tcp::refusal_code::already_connected);
  CHECK(log.wait_for("refused learner 1 from 127.0.0.1:"));
  flotilla::coordinator federation(transport, model(2).parameters(), {.quorum = 1, .round_timeout = 5s});
  CHECK(federation.run_round().participants == std::vector<flotilla::learner_id>{1});
}

TEST_CASE("failures that match no task are counted and dropped; a flood of them disconnects") {
  captured_log log;
  server transport(quick_server(log));
  raw_peer peer(transport.port());
  peer.register_as(3);
  REQUIRE(flotilla::wait_for_learners(transport, 1, 5s));
  for (int i = 0; i < 10; ++i)
    peer.write_frame(make_frame(frame_type::failure, 7, flotilla::tcp::encode_reason(flotilla::task_kind::fit, "x")));
  CHECK(log.wait_for("disconnected: protocol error: more than 8 failure frames that match no task"));
  CHECK(transport.statistics().unsolicited_messages == 9);
  CHECK_FALSE(transport.receive(flotilla::deadline_clock::now() + 100ms).has_value());  // none reached the inbox
}

TEST_CASE("text from a peer is escaped in the history and the log: it cannot forge a line") {
  captured_log log;
  server transport(quick_server(log));
  raw_peer peer(transport.port());
  peer.register_as(4);
  REQUIRE(flotilla::wait_for_learners(transport, 1, 5s));
  flotilla::coordinator federation(transport, model(2).parameters(), {.quorum = 1, .round_timeout = 5s});
  auto round = std::async(std::launch::async, [&] { return federation.run_round(); });
  const auto task = peer.next_non_heartbeat();
  REQUIRE(task.header.type == frame_type::task);
  peer.write_frame(make_frame(frame_type::failure, task.header.round,
                              flotilla::tcp::encode_reason(flotilla::task_kind::fit,
                                                           "oops\nlearner 42 registered from 10.1.2.3:5555")));
  const auto record = round.get();
  REQUIRE(record.rejections.size() == 1);
  CHECK(record.rejections[0].reason == "learner reported: oops\\x0alearner 42 registered from 10.1.2.3:5555");
  CHECK(log.all().find("\nlearner 42 registered") == std::string::npos);
}

TEST_CASE("a slow but steady link delivers a reply larger than a chunk; a trickle is dropped") {
  captured_log log;
  auto options = quick_server(log);
  options.heartbeat_timeout = 500ms;
  server transport(options);
  raw_peer peer(transport.port());
  peer.register_as(1);
  REQUIRE(flotilla::wait_for_learners(transport, 1, 5s));
  const auto global = large_model(200'000);  // 1.6 MB of scalars: a 1 MiB chunk takes longer than the timeout
  flotilla::coordinator federation(transport, global, {.quorum = 1, .round_timeout = 10s});
  auto round = std::async(std::launch::async, [&] { return federation.run_round(); });
  const auto task = peer.next_non_heartbeat();
  REQUIRE(task.header.type == frame_type::task);
  const auto frame = reply_frame(1, task.header.round, global);
  const auto payload = payload_of(frame);
  peer.write(frame.header);
  SUBCASE("about 1 MB/s, in 20 KB pieces") {
    for (std::size_t at = 0; at < payload.size(); at += 20'000) {
      peer.write(std::span(payload).subspan(at, std::min<std::size_t>(20'000, payload.size() - at)));
      std::this_thread::sleep_for(20ms);
    }
    CHECK(round.get().participants == std::vector<flotilla::learner_id>{1});
  }
  SUBCASE("10 bytes every 100 ms: below the minimum rate") {
    for (std::size_t at = 0; at < 200 && !log.wait_for("below the minimum", 0ms); at += 10) {
      peer.write(std::span(payload).subspan(at, 10));
      std::this_thread::sleep_for(100ms);
    }
    const auto record = round.get();
    CHECK(record.participants.empty());
    REQUIRE(record.rejections.size() == 1);
    CHECK(record.rejections[0].reason.find("bytes/s, below the minimum of 1,024") != std::string::npos);
  }
}

TEST_CASE("replies waiting for the coordinator are bounded in bytes: sockets wait while it is full") {
  captured_log log;
  auto options = quick_server(log);
  options.max_waiting_bytes = 1 << 20;
  server transport(options);
  raw_peer a(transport.port()), b(transport.port());
  a.register_as(1);
  b.register_as(2);
  REQUIRE(flotilla::wait_for_learners(transport, 2, 5s));
  const auto global = large_model(100'000);  // 800 KB: two do not fit in 1 MiB
  send_fit(transport, global, {1, 2});
  REQUIRE(a.next_non_heartbeat().header.type == frame_type::task);
  REQUIRE(b.next_non_heartbeat().header.type == frame_type::task);
  a.write_frame(reply_frame(1, 1, global));
  b.write_frame(reply_frame(2, 1, global));
  std::this_thread::sleep_for(500ms);  // both are sent; only one may be held
  CHECK(transport.statistics().waiting_bytes == 800'000);
  CHECK(transport.receive(flotilla::deadline_clock::now() + 1s).has_value());
  CHECK(transport.receive(flotilla::deadline_clock::now() + 2s).has_value());  // read once there was room
  CHECK(transport.statistics().waiting_bytes == 0);
  CHECK(transport.statistics().peak_buffered_bytes < 2 * 800'000 + (2 << 20));
  CHECK(transport.connected().size() == 2);  // waiting is not silence: nobody was dropped
}

TEST_CASE("a learner that stops reading is dropped at the write deadline") {
  captured_log log;
  auto options = quick_server(log);
  options.write_timeout = 300ms;
  server transport(options);
  raw_peer deaf(transport.port());
  deaf.register_as(1);
  REQUIRE(flotilla::wait_for_learners(transport, 1, 5s));
  // 32 MB: far more than the socket buffers take while the peer reads nothing.
  const auto global = large_model(4'000'000);
  send_fit(transport, global, {1});
  std::thread talker([&] {  // it keeps sending heartbeats, so only the write deadline can catch it
    for (int i = 0; i < 20 && !log.wait_for("no write progress", 0ms); ++i) {
      deaf.write_frame(make_frame(frame_type::heartbeat, 0));
      std::this_thread::sleep_for(50ms);
    }
  });
  CHECK(log.wait_for("disconnected: no write progress for 300 ms: the peer is not reading"));
  talker.join();
}

TEST_CASE("receive buffers are given back after a large reply") {
  captured_log log;
  server transport(quick_server(log));
  client_thread learner(1, quick_client(transport.port(), log));
  REQUIRE(flotilla::wait_for_learners(transport, 1, 5s));
  raw_peer peer(transport.port());
  peer.register_as(2);
  REQUIRE(flotilla::wait_for_learners(transport, 2, 5s));
  const auto global = large_model(400'000);
  send_fit(transport, global, {2});
  REQUIRE(peer.next_non_heartbeat().header.type == frame_type::task);
  peer.write_frame(reply_frame(2, 1, global));
  CHECK(transport.receive(flotilla::deadline_clock::now() + 5s).has_value());
  CHECK(transport.statistics().peak_buffered_bytes >= 3'200'000);
  CHECK(transport.statistics().buffered_bytes <= 2 * (64 << 10));  // two idle connections, small buffers
}

TEST_CASE("connections that have not authenticated are capped in total, whatever their addresses") {
  captured_log log;
  auto options = quick_server(log);
  options.max_unauthenticated = 2;
  server transport(options);
  std::vector<std::unique_ptr<raw_peer>> idle;
  for (int i = 0; i < 4; ++i) idle.push_back(std::make_unique<raw_peer>(transport.port()));
  CHECK(log.wait_for("2 connections are already authenticating (the limit)"));
  for (int i = 0; i < 200 && transport.statistics().connections_turned_away < 2; ++i) std::this_thread::sleep_for(10ms);
  CHECK(transport.statistics().unauthenticated_connections == 2);
  CHECK(transport.statistics().connections_turned_away == 2);
}

TEST_CASE("when descriptors run out, accepting pauses with a rate-limited log instead of spinning") {
  captured_log log;
  server transport(quick_server(log));
  // Client sockets are opened first; then the process is left no free descriptor, so the
  // connections complete in the listen backlog and the aggregator's accept fails with EMFILE.
  asio::io_context io;
  std::vector<asio::ip::tcp::socket> peers;
  for (int i = 0; i < 8; ++i) {
    peers.emplace_back(io);
    peers.back().open(asio::ip::tcp::v4());
  }
  const int lowest_free = [] {  // the next descriptor would take this number (the lowest free one)
    int fd = 0;
    while (fcntl(fd, F_GETFD) != -1) ++fd;
    return fd;
  }();
  rlimit original{};
  REQUIRE(getrlimit(RLIMIT_NOFILE, &original) == 0);
  rlimit tight = original;
  tight.rlim_cur = rlim_t(lowest_free);
  REQUIRE(setrlimit(RLIMIT_NOFILE, &tight) == 0);
  for (auto& peer : peers) peer.connect({asio::ip::make_address("127.0.0.1"), transport.port()});
  const bool paused = log.wait_for("accept failed: Too many open files; pausing accepts");
  std::this_thread::sleep_for(1500ms);
  REQUIRE(setrlimit(RLIMIT_NOFILE, &original) == 0);
  CHECK(paused);
  std::size_t accept_lines = 0;
  const auto all = log.all();
  for (std::size_t at = all.find("accept failed"); at != std::string::npos; at = all.find("accept failed", at + 1))
    ++accept_lines;
  CHECK(accept_lines <= 20);  // ten a second at most, not hundreds of thousands
  peers.clear();
  client_thread learner(1, quick_client(transport.port(), log));
  CHECK(flotilla::wait_for_learners(transport, 1, 10s));  // accepting resumed
}

TEST_CASE("a learner bounds a task by its own model: a hostile aggregator cannot size its memory") {
  // A fake aggregator on a raw acceptor: challenge, welcome, then a task announcing 4 GiB.
  captured_log log;
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  client_thread learner(1, quick_client(acceptor.local_endpoint().port(), log));
  asio::ip::tcp::socket socket(io);
  acceptor.accept(socket);
  const auto send = [&](const flotilla::tcp::outgoing_frame& frame) {
    asio::write(socket, asio::buffer(frame.header));
    for (const auto piece : frame.payload) asio::write(socket, asio::buffer(piece.data(), piece.size()));
  };
  send(make_frame(frame_type::challenge, 0, flotilla::tcp::encode_challenge(flotilla::tcp::make_challenge())));
  std::array<std::byte, flotilla::tcp::header_size> hello_header{};
  asio::read(socket, asio::buffer(hello_header));
  std::vector<std::byte> hello(flotilla::tcp::decode_header(hello_header, 64).payload_size);
  asio::read(socket, asio::buffer(hello));
  send(make_frame(frame_type::welcome, 0));
  SUBCASE("a header announcing 4 GiB") {
    asio::write(socket, asio::buffer(flotilla::tcp::encode_header({frame_type::task, 1, std::uint64_t{1} << 32, 0})));
    CHECK(log.wait_for("protocol error: task frame announces 4,294,967,296 payload bytes; the limit is 1,048,600"));
  }
  SUBCASE("a task for another model") {
    const auto other = std::make_shared<const params>(large_model(10));
    send(flotilla::tcp::make_message_frame(frame_type::task, 1,
                                           std::make_shared<const flotilla::task<params>>(flotilla::task<params>{
                                               flotilla::task_kind::fit, 1, other, {}})));
    CHECK(log.wait_for("protocol error: task payload does not decode: tensor 'w' has more than 3 scalars"));
  }
}

#include <flotilla/transport/tcp/server_transport.hpp>

#include "tcp_support.hpp"

#include <cmath>
#include <future>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

using namespace tcp_test;
using flotilla::tcp::frame_type;
using flotilla::tcp::make_frame;

static_assert(flotilla::Transport<server>);

namespace {

flotilla::coordinator_options round_options(std::size_t quorum) {
  return {.quorum = quorum, .round_timeout = 5s, .wait_for_learners = 5s};
}

// "learner: reason" lines. A peer's reset reaches the aggregator through its pending read or,
// when a heartbeat is being written at that moment, through the write; both are the same fault.
const std::string current_version = std::to_string(flotilla::tcp::protocol_version);
const std::string previous_version = std::to_string(flotilla::tcp::protocol_version - 1);

std::string rejections_of(const flotilla::round_record& record) {
  std::string out;
  for (const auto& r : record.rejections) {
    auto reason = r.reason;
    if (reason.ends_with("write failed: Connection reset by peer")) reason.erase(reason.size() - 38, 14);
    out += std::to_string(r.learner) + ": " + reason + "\n";
  }
  return out;
}

}  // namespace

TEST_CASE("a federation over TCP reaches the same model as the same federation in memory") {
  captured_log log;
  server transport(quick_server(log));
  {
    client_thread a(1, quick_client(transport.port(), log)), b(2, quick_client(transport.port(), log)),
        c(3, quick_client(transport.port(), log), 0ms, 35);
    flotilla::coordinator federation(transport, model(2).parameters(), round_options(3));
    const auto& history = federation.run(flotilla::stop::after_rounds(3));
    for (const auto& r : history.rounds) CHECK(r.participants == std::vector<flotilla::learner_id>{1, 2, 3});

    std::vector<test_learner> local;
    local.emplace_back(1, slow_model{}, line_data(20, 101));
    local.emplace_back(2, slow_model{}, line_data(20, 102));
    local.emplace_back(3, slow_model{}, line_data(35, 103));
    flotilla::in_memory_transport memory(std::move(local), 1);
    flotilla::coordinator reference(memory, model(2).parameters(), {.quorum = 3});
    reference.run(flotilla::stop::after_rounds(3));
    for (std::size_t i = 0; i < 3; ++i)
      CHECK(federation.global().values()[i] == doctest::Approx(reference.global().values()[i]).epsilon(1e-12));
    transport.say_goodbye();
    CHECK(a.wait() == flotilla::tcp::client_exit::goodbye);
  }
  CHECK(log.wait_for("learner 1: the aggregator ended the run"));
  // A normal end is logged as one, on both sides, never as a lost connection.
  CHECK(log.wait_for(") left: the run is over"));
  const auto lines = log.all();
  CHECK(lines.find("disconnected") == std::string::npos);
  CHECK(lines.find("connection closed") == std::string::npos);
}

TEST_CASE("a learner gives up on an aggregator that speaks another protocol version") {
  captured_log log;
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  // An aggregator from the release before: answers each opening with a challenge of its version.
  std::thread old_aggregator([&] {
    for (int attempt = 0; attempt < 2; ++attempt) {
      auto socket = acceptor.accept();
      std::array<std::byte, flotilla::tcp::header_size> opening{};
      asio::read(socket, asio::buffer(opening));
      const auto nonce = flotilla::tcp::make_challenge();
      auto challenge = make_frame(frame_type::challenge, 0, flotilla::tcp::encode_challenge(nonce));
      challenge.header[4] = std::byte{flotilla::tcp::protocol_version - 1};
      asio::write(socket, asio::buffer(challenge.header));
      asio::write(socket, asio::buffer(challenge.payload.front().data(), challenge.payload.front().size()));
      std::error_code ignored;
      asio::read(socket, asio::buffer(opening), ignored);  // until the learner hangs up
    }
  });
  auto options = quick_client(acceptor.local_endpoint().port(), log);
  options.give_up_after = 2;
  client_thread learner(1, options);
  CHECK(learner.wait() == flotilla::tcp::client_exit::version_mismatch);
  old_aggregator.join();
  CHECK(log.wait_for("learner 1: giving up: the aggregator speaks protocol version " + previous_version +
                     "; this learner speaks version " + current_version));
}

TEST_CASE("bad frames from an unregistered peer close only that connection, with the reason logged") {
  captured_log log;
  server transport(quick_server(log));
  client_thread good(1, quick_client(transport.port(), log));
  REQUIRE(flotilla::wait_for_learners(transport, 1, 5s));

  const auto hello = make_frame(frame_type::hello, 0, flotilla::tcp::encode_hello({5, {}}));
  SUBCASE("wrong magic") {
    raw_peer peer(transport.port());
    (void)peer.read_challenge();
    auto bad = hello;
    bad.header[0] = std::byte{'X'};
    peer.write_frame(bad);
    CHECK(log.wait_for("closed before registering: protocol error: wrong magic number: not a Flotilla frame"));
  }
  SUBCASE("unknown protocol version") {
    raw_peer peer(transport.port());
    auto bad = make_frame(frame_type::opening, 0);
    bad.header[4] = std::byte{flotilla::tcp::protocol_version - 1};  // the release before: refused with both versions named
    peer.write_frame(bad);
    CHECK(log.wait_for("protocol error: peer speaks protocol version " + previous_version + "; this build speaks version " +
                       current_version));
  }
  SUBCASE("length over the limit") {
    raw_peer peer(transport.port());
    peer.send_opening();
    peer.write(flotilla::tcp::encode_header({frame_type::hello, 0, 100000, 0}));
    CHECK(log.wait_for("protocol error: hello frame announces 100,000 payload bytes; the limit is 4,096"));
  }
  SUBCASE("checksum mismatch") {
    raw_peer peer(transport.port());
    peer.send_opening();
    auto payload = payload_of(hello);
    payload[2] ^= std::byte{0x40};
    peer.write(hello.header);
    peer.write(payload);
    CHECK(log.wait_for("protocol error: hello frame payload checksum mismatch"));
  }
  SUBCASE("truncated frame") {
    {
      raw_peer peer(transport.port());
      (void)peer.read_challenge();  // unread bytes would turn the close into a reset
      peer.write(hello.header);
      const auto payload = payload_of(hello);
      peer.write(std::span(payload).first(3));
    }
    CHECK(log.wait_for("closed before registering: peer closed the connection"));
  }
  SUBCASE("a frame type out of place") {
    raw_peer peer(transport.port());
    peer.write_frame(make_frame(frame_type::heartbeat, 1));
    CHECK(log.wait_for("protocol error: heartbeat frame out of place: expected opening"));
    raw_peer opened(transport.port());
    opened.send_opening();
    opened.write_frame(make_frame(frame_type::heartbeat, 1));
    CHECK(log.wait_for("protocol error: heartbeat frame out of place: expected hello"));
  }
  SUBCASE("silence instead of a hello") {
    flotilla::tcp::server_options options = quick_server(log);
    options.handshake_timeout = 200ms;
    server strict(options);
    raw_peer peer(strict.port());
    CHECK(log.wait_for("closed before registering: no hello within 200 ms"));
  }
  // The good learner was never disturbed.
  flotilla::coordinator federation(transport, model(2).parameters(), round_options(1));
  CHECK(federation.run_round().participants == std::vector<flotilla::learner_id>{1});
}

namespace {
std::string layout_mismatch(const params& update, const params& global) {
  try {
    flotilla::require_same_layout(update, global);
  } catch (const flotilla::layout_error& error) {
    return error.what();
  }
  return "same layout";
}
}  // namespace

TEST_CASE("bad frames from a registered learner close its connection and fail its task") {
  captured_log log;
  auto options = quick_server(log);
  options.max_payload = 1 << 20;
  server transport(options);
  client_thread good(1, quick_client(transport.port(), log));
  raw_peer peer(transport.port());
  peer.register_as(9);
  REQUIRE(flotilla::wait_for_learners(transport, 2, 5s));
  flotilla::coordinator federation(transport, model(2).parameters(), round_options(1));
  auto round = std::async(std::launch::async, [&] { return federation.run_round(); });
  const auto task = peer.next_non_heartbeat();
  REQUIRE(task.header.type == frame_type::task);
  const auto global = flotilla::decode_task<params>(task.payload).parameters;

  std::string expected;
  SUBCASE("a reply whose layout differs from the task's") {
    peer.write_frame(reply_frame(9, task.header.round, params(flotilla::tensor_layout({{"weight", {5}}, {"bias", {1}}}))));
    // Refused from the layout, before room for its scalars is made: the task's model has 3.
    expected = "9: connection lost: protocol error: reply payload does not decode: tensor 'weight' has more than 3 "
               "scalars, the limit";
  }
  SUBCASE("a reply holding NaN") {
    // Content, not protocol: the round's door rejects it (the one scan of its values) and the
    // connection stays open.
    auto poisoned = *global;
    poisoned.values()[1] = std::numeric_limits<double>::quiet_NaN();
    peer.write_frame(reply_frame(9, task.header.round, poisoned));
    expected = "9: update holds a non-finite value (nan) at parameter index 1";
  }
  SUBCASE("a reply of the task's size but another layout") {
    peer.write_frame(reply_frame(9, task.header.round, params(flotilla::tensor_layout({{"w", {3}}}))));
    expected = "9: " + layout_mismatch(params(flotilla::tensor_layout({{"w", {3}}})), *global);
  }
  SUBCASE("a reply that claims another learner") {
    peer.write_frame(reply_frame(4, task.header.round, *global));
    expected = "9: connection lost: protocol error: reply claims to come from learner 4; the connection belongs to "
               "learner 9";
  }
  SUBCASE("a payload over the limit") {
    peer.write(flotilla::tcp::encode_header({frame_type::reply, task.header.round, 2 << 20, 0}));
    expected = "9: connection lost: protocol error: reply frame announces 2,097,152 payload bytes; the limit is "
               "1,048,576";  // the transport's ceiling, lower here than the task's allowance
  }
  SUBCASE("a frame type out of place") {
    peer.write_frame(make_frame(frame_type::welcome, 0));
    expected = "9: connection lost: protocol error: welcome frame out of place from a learner";
  }
  SUBCASE("a reply payload that does not decode") {
    auto bytes = std::make_shared<flotilla::byte_buffer>(flotilla::encode(flotilla::reply<params>{
        9, flotilla::task_kind::fit, task.header.round, {10, {}}, *global}));
    (*bytes)[3] = std::byte{0x55};  // inside the envelope's magic number
    peer.write_frame(make_frame(frame_type::reply, task.header.round, bytes));
    expected = "9: connection lost: protocol error: reply payload does not decode: not a Flotilla message: wrong "
               "magic number";
  }
  SUBCASE("a reset in the middle of a frame") {
    const auto frame = reply_frame(9, task.header.round, *global);
    peer.write(frame.header);
    const auto payload = payload_of(frame);
    peer.write(std::span(payload).first(10));
    peer.reset();
    expected = "9: connection lost: Connection reset by peer";
  }
  const auto record = round.get();
  CHECK(record.status == flotilla::round_status::aggregated);
  CHECK(record.participants == std::vector<flotilla::learner_id>{1});
  CHECK(rejections_of(record) == expected + "\n");
  CHECK(log.wait_for("learner 9 (127.0.0.1:"));
}

TEST_CASE("a reply larger than a receive chunk lands in place; a corrupt or cut tail still fails only its learner") {
  captured_log log;
  server transport(quick_server(log));
  raw_peer good(transport.port()), bad(transport.port());
  good.register_as(1);
  bad.register_as(2);
  REQUIRE(flotilla::wait_for_learners(transport, 2, 5s));
  // 3.2 MB of scalars: past the first 1 MiB chunk, the rest is received straight into the reply.
  const params initial(flotilla::tensor_layout({{"w", {400'000}}}));
  flotilla::coordinator federation(transport, initial, round_options(1));
  auto round = std::async(std::launch::async, [&] { return federation.run_round(); });
  REQUIRE(good.next_non_heartbeat().header.type == frame_type::task);
  const auto task = bad.next_non_heartbeat();
  REQUIRE(task.header.type == frame_type::task);
  params trained(initial.shared_layout());
  for (std::size_t i = 0; i < trained.size(); ++i) trained.values()[i] = 0.25 * double(i % 1000);
  good.write_frame(reply_frame(1, task.header.round, trained));

  const auto frame = reply_frame(2, task.header.round, trained);
  auto payload = payload_of(frame);
  std::string expected;
  SUBCASE("one flipped bit near the end") {
    payload[payload.size() - 100] ^= std::byte{0x01};
    bad.write(frame.header);
    bad.write(payload);
    expected = "2: connection lost: protocol error: reply frame payload checksum mismatch";
  }
  SUBCASE("a reset halfway through the scalars") {
    bad.write(frame.header);
    bad.write(std::span(payload).first(payload.size() / 2));
    bad.reset();
    expected = "2: connection lost: Connection reset by peer";
  }
  const auto record = round.get();
  CHECK(record.status == flotilla::round_status::aggregated);
  CHECK(record.participants == std::vector<flotilla::learner_id>{1});
  CHECK(rejections_of(record) == expected + "\n");
  CHECK(federation.global() == trained);  // the one good reply, bit for bit
}

TEST_CASE("a learner that goes silent is dropped after the heartbeat timeout") {
  captured_log log;
  auto options = quick_server(log);
  options.heartbeat_timeout = 300ms;
  server transport(options);
  raw_peer peer(transport.port());
  peer.register_as(5);
  REQUIRE(flotilla::wait_for_learners(transport, 1, 5s));
  CHECK(log.wait_for("learner 5 (127.0.0.1:"));
  CHECK(log.wait_for("disconnected: nothing received for 300 ms (heartbeat timeout)"));
  CHECK(transport.connected().empty());
}

TEST_CASE("a straggler's late reply is recognised by its round and rejected") {
  captured_log log;
  server transport(quick_server(log));
  client_thread fast(1, quick_client(transport.port(), log)), slow(2, quick_client(transport.port(), log), 600ms);
  REQUIRE(flotilla::wait_for_learners(transport, 2, 5s));
  flotilla::coordinator federation(transport, model(2).parameters(), {.quorum = 1, .round_timeout = 200ms});
  const auto first = federation.run_round();
  CHECK(first.participants == std::vector<flotilla::learner_id>{1});
  CHECK(rejections_of(first) == "2: no reply within the phase deadline of 0.2 s\n");
  std::this_thread::sleep_for(800ms);  // the straggler's reply is in by now
  const auto second = federation.run_round();
  CHECK(rejections_of(second).find("2: fit reply belongs to round 1; the current round is 2") != std::string::npos);
}

TEST_CASE("learners reconnect with backoff after the aggregator restarts and join the next round") {
  captured_log log;
  auto options = quick_server(log);
  auto transport = std::make_unique<server>(options);
  const auto port = transport->port();
  client_thread a(1, quick_client(port, log)), b(2, quick_client(port, log));
  {
    flotilla::coordinator federation(*transport, model(2).parameters(), round_options(2));
    CHECK(federation.run_round().participants.size() == 2);
  }
  transport.reset();  // the aggregator process dies: no goodbye
  CHECK(log.wait_for("learner 1: reconnecting in"));
  options.port = port;
  transport = std::make_unique<server>(options);
  flotilla::coordinator restarted(*transport, model(2).parameters(), round_options(2));
  const auto record = restarted.run_round();
  CHECK(record.participants == std::vector<flotilla::learner_id>{1, 2});
}

TEST_CASE("a learner that rejoins under the same identity replaces its old connection") {
  captured_log log;
  server transport(quick_server(log));
  raw_peer stale(transport.port());
  stale.register_as(1);
  REQUIRE(flotilla::wait_for_learners(transport, 1, 5s));
  client_thread fresh(1, quick_client(transport.port(), log));  // the stale one never speaks again
  CHECK(log.wait_for("learner 1: takeover: its silent connection from 127.0.0.1:"));
  CHECK(log.wait_for("disconnected: replaced by a new connection from the same learner"));
  flotilla::coordinator federation(transport, model(2).parameters(), round_options(1));
  CHECK(federation.run_round().participants == std::vector<flotilla::learner_id>{1});
}

TEST_CASE("a learner without a valid token is refused; the wire says only that authentication failed") {
  captured_log log;
  auto options = quick_server(log);
  options.tokens = {{1, "open-sesame"}};
  server transport(options);
  auto with_token = [&](std::string token) {
    auto client = quick_client(transport.port(), log);
    client.token = std::move(token);
    return client;
  };
  client_thread wrong(1, with_token("guess"));
  CHECK(wrong.wait() == flotilla::tcp::client_exit::refused);
  CHECK(log.wait_for("refused learner 1 from 127.0.0.1:"));
  CHECK(log.wait_for(": wrong token proof"));  // the aggregator's log keeps the detail
  CHECK(log.wait_for("learner 1: refused by the aggregator: authentication failed"));
  client_thread unknown(2, with_token("open-sesame"));
  CHECK(unknown.wait() == flotilla::tcp::client_exit::refused);
  CHECK(log.wait_for(": unknown learner id"));
  CHECK(log.wait_for("learner 2: refused by the aggregator: authentication failed"));
  CHECK(transport.connected().empty());
  CHECK(transport.statistics().authentication_failures == 2);
  client_thread right(1, with_token("open-sesame"));
  REQUIRE(flotilla::wait_for_learners(transport, 1, 5s));
  flotilla::coordinator federation(transport, model(2).parameters(), round_options(1));
  CHECK(federation.run_round().participants == std::vector<flotilla::learner_id>{1});
}

namespace {
// Records the settings each fit task brought, by learner.
struct settings_log {
  std::mutex mutex;
  std::map<flotilla::learner_id, flotilla::settings> seen;
};

struct recording_model {
  slow_model inner;
  settings_log* log = nullptr;
  flotilla::learner_id id = 0;
  const params& parameters() const { return inner.parameters(); }
  void set_parameters(const params& p) { inner.set_parameters(p); }
  flotilla::local_result fit(const model::data_type& data, const flotilla::fit_config& config) {
    {
      std::lock_guard lock(log->mutex);
      log->seen[id] = config.values;
    }
    return inner.fit(data, config);
  }
};
using recording_learner = flotilla::learner<recording_model, model::data_type>;
}  // namespace

TEST_CASE("learners report properties when they join; configure_fit gives each its own settings over TCP") {
  captured_log log;
  server transport(quick_server(log));
  settings_log seen;
  std::vector<std::unique_ptr<recording_learner>> learners;
  std::vector<std::unique_ptr<flotilla::tcp::learner_client<recording_learner>>> clients;
  std::vector<std::thread> threads;
  for (flotilla::learner_id id = 1; id <= 3; ++id) {
    learners.push_back(std::make_unique<recording_learner>(id, recording_model{{}, &seen, id}, line_data(10 * id, id)));
    learners.back()->set_properties({{"examples", std::int64_t(10 * id)}, {"device", id == 2 ? "gpu" : "cpu"}});
    clients.push_back(std::make_unique<flotilla::tcp::learner_client<recording_learner>>(
        *learners.back(), quick_client(transport.port(), log)));
    threads.emplace_back([client = clients.back().get()] { client->run(); });
  }
  REQUIRE(flotilla::wait_for_learners(transport, 3, 5s));
  CHECK(transport.properties(2) == flotilla::settings{{"device", "gpu"}, {"examples", std::int64_t{20}}});
  CHECK(transport.properties(9).empty());

  flotilla::coordinator federation(
      transport, model(2).parameters(),
      {.selection = {.fraction = 1.0, .minimum = 1,
                     .eligible = [](flotilla::learner_id, const flotilla::settings& p) {
                       return flotilla::setting_or(p, "device", std::string()) == "cpu";
                     },
                     .weight = {}},
       .quorum = 2, .round_timeout = 5s,
       .fit_settings = {{"learning_rate", 0.1}},
       .configure_fit = [](flotilla::learner_id, const flotilla::settings& properties, std::uint64_t) {
         // Smaller shares take smaller steps.
         return flotilla::settings{
             {"learning_rate", 0.01 * double(flotilla::setting_or(properties, "examples", std::int64_t{0}))}};
       }});
  CHECK(federation.run_round().participants == std::vector<flotilla::learner_id>{1, 3});
  {
    std::lock_guard lock(seen.mutex);
    CHECK(seen.seen.size() == 2);  // learner 2 (gpu) was not eligible
    CHECK(flotilla::setting_or(seen.seen[1], "learning_rate", 0.0) == doctest::Approx(0.1));
    CHECK(flotilla::setting_or(seen.seen[3], "learning_rate", 0.0) == doctest::Approx(0.3));
  }
  transport.say_goodbye();
  for (auto& thread : threads) thread.join();
}

TEST_CASE("a learner's properties beyond the hello's bounds are a configuration error, not a retry loop") {
  captured_log log;
  auto options = quick_client(1, log);
  for (int i = 0; i < 33; ++i) options.properties["p" + std::to_string(i)] = std::int64_t{i};
  test_learner learner(1, slow_model{}, line_data(5, 1));
  CHECK_THROWS_WITH_AS(flotilla::tcp::learner_client<test_learner>(learner, options),
                       "a learner reports at most 32 properties; got 33", flotilla::configuration_error);
  options.properties = {{"device", std::string(257, 'x')}};
  CHECK_THROWS_WITH_AS(flotilla::tcp::learner_client<test_learner>(learner, options),
                       "property 'device' is longer than 256 bytes, the limit of a name or text",
                       flotilla::configuration_error);
  options.properties.clear();
  for (int i = 0; i < 20; ++i) options.properties["p" + std::to_string(i)] = std::string(250, 'x');
  CHECK_THROWS_WITH_AS(flotilla::tcp::learner_client<test_learner>(learner, options),
                       doctest::Contains("this learner's properties take 5,"), flotilla::configuration_error);
}

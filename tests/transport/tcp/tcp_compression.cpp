// Compression over real TCP sockets: coded tasks and coded replies between a server transport
// and learner clients, ending where the same federation ends in memory; a learner that does not
// code is still heard. (A codec a learner does not know is refused by name: tests/wire/coded.cpp.)
#include <flotilla/transport/tcp/server_transport.hpp>

#include "tcp_support.hpp"

#include <flotilla/round/compressing_learner.hpp>

#include <thread>
#include <vector>

using namespace tcp_test;
namespace compression = flotilla::compression;

namespace {

using float_model = flotilla::linear_regression<float>;
using float_params = float_model::parameters_type;
using base_learner = flotilla::learner<float_model, float_model::data_type>;
using coding_learner = flotilla::compressing_learner<base_learner>;

float_model::data_type float_line(std::uint64_t seed) {
  const auto data = line_data(30, seed);
  return {data.features.cast<float>(), data.targets.cast<float>()};
}
base_learner make_learner(flotilla::learner_id id) {
  return base_learner(id, float_model(2, {.learning_rate = 0.1, .epochs = 1, .batch_size = 0}), float_line(id + 100));
}

// A learner client on its own thread, serving until destroyed.
template <class L>
class serving {
 public:
  serving(L learner, flotilla::tcp::client_options options)
      : learner_(std::move(learner)), client_(learner_, std::move(options)), thread_([this] { client_.run(); }) {}
  ~serving() {
    client_.stop();
    thread_.join();
  }

 private:
  L learner_;
  flotilla::tcp::learner_client<L> client_;
  std::thread thread_;
};

const flotilla::compression::options codecs{.to_learners = compression::parse_codec("int8:2"),
                                            .to_aggregator = compression::parse_codec("top_k:0.34")};

}  // namespace

TEST_CASE("coded tasks and coded replies over TCP end where the same federation ends in memory") {
  captured_log log;
  flotilla::tcp::server_transport<float_params> transport(quick_server(log));
  std::vector<float> over_tcp;
  {
    serving<coding_learner> a(coding_learner(make_learner(1)), quick_client(transport.port(), log));
    serving<coding_learner> b(coding_learner(make_learner(2)), quick_client(transport.port(), log));
    flotilla::coordinator federation(transport, float_model(2).parameters(),
                                     {.quorum = 2, .round_timeout = 5s, .wait_for_learners = 5s, .seed = 4, .compression = codecs});
    const auto& history = federation.run(flotilla::stop::after_rounds(4));
    for (const auto& r : history.rounds) CHECK(r.participants == std::vector<flotilla::learner_id>{1, 2});
    over_tcp.assign(federation.global().values().begin(), federation.global().values().end());
    transport.say_goodbye();
  }
  std::vector<coding_learner> local;
  local.emplace_back(make_learner(1));
  local.emplace_back(make_learner(2));
  flotilla::in_memory_transport memory(std::move(local), 1);
  flotilla::coordinator reference(memory, float_model(2).parameters(), {.quorum = 2, .seed = 4, .compression = codecs});
  reference.run(flotilla::stop::after_rounds(4));
  // The same coded bytes both ways; only the order replies are folded in may differ.
  for (std::size_t i = 0; i < 3; ++i) CHECK(over_tcp[i] == doctest::Approx(reference.global().values()[i]).epsilon(1e-6));
  CHECK(std::abs(over_tcp[0]) > 0.1f);  // the model moved
}

TEST_CASE("a learner that does not code answers a coded task with its parameters, and is heard") {
  captured_log log;
  flotilla::tcp::server_transport<float_params> transport(quick_server(log));
  serving<base_learner> plain(make_learner(1), quick_client(transport.port(), log));
  serving<coding_learner> coding(coding_learner(make_learner(2)), quick_client(transport.port(), log));
  flotilla::coordinator federation(transport, float_model(2).parameters(),
                                   {.quorum = 2, .round_timeout = 5s, .wait_for_learners = 5s, .compression = codecs});
  const auto& record = federation.run_round();
  CHECK(record.participants == std::vector<flotilla::learner_id>{1, 2});
  CHECK(record.rejections.empty());
  transport.say_goodbye();
}

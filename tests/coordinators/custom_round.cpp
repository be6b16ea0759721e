// A round of two stages built from the round pieces, without touching the coordinator: a probe
// stage (a custom task kind) asks each learner for its loss at the global parameters, and its
// combined loss sets the learning rate the fit stage sends. Run over the in-memory transport
// and over TCP; the numbers are worked out by hand below.
#include <flotilla/round/phases.hpp>

#include <flotilla/aggregators/mean.hpp>
#include <flotilla/parameters.hpp>
#include <flotilla/transport/in_memory.hpp>
#include <flotilla/transport/tcp/learner_client.hpp>
#include <flotilla/transport/tcp/server_transport.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <thread>
#include <vector>

namespace {
using namespace std::chrono_literals;
using params = flotilla::parameters<double>;
using rule = flotilla::weighted_mean<params>;
constexpr auto probe = flotilla::custom_task_kind(0);

params vector_of(double a, double b) {
  params p(flotilla::tensor_layout({{"w", {2}}}));
  p.values()[0] = a;
  p.values()[1] = b;
  return p;
}

// A learner whose data is summed up by a target point: its loss is the squared distance to it,
// and one fit step moves the model `learning_rate` of the way there.
class target_learner {
 public:
  using parameters_type = params;
  target_learner(flotilla::learner_id id, params target, std::int64_t examples)
      : id_(id), target_(std::move(target)), examples_(examples) {}
  [[nodiscard]] flotilla::learner_id id() const { return id_; }

  flotilla::reply<params> handle(const flotilla::task<params>& work) {
    const auto w = work.parameters->values();
    const auto t = target_.values();
    flotilla::reply<params> answer{.learner = id_, .kind = work.kind, .round = work.round, .result = {}, .parameters = {}};
    if (work.kind == probe) {
      const double loss = (w[0] - t[0]) * (w[0] - t[0]) + (w[1] - t[1]) * (w[1] - t[1]);
      answer.result = {.examples = 1, .metrics = {{"loss", loss}}};
      return answer;
    }
    if (work.kind != flotilla::task_kind::fit) throw flotilla::task_error("unexpected task");
    const double rate = work.config.get("learning_rate", 0);
    answer.parameters = vector_of(w[0] + rate * (t[0] - w[0]), w[1] + rate * (t[1] - w[1]));
    answer.result = {.examples = examples_, .metrics = {{"learning_rate", rate}}};
    return answer;
  }

 private:
  flotilla::learner_id id_;
  params target_;
  std::int64_t examples_;
};

struct two_stage_result {
  std::shared_ptr<const params> global;
  flotilla::round_record record;
  double probed_loss = 0;
};

// The custom round: only public round pieces (exchange, fit_phase, round_state, rejection_log).
template <class T>
two_stage_result two_stage_round(T& transport, std::shared_ptr<const params> global, std::uint64_t round) {
  two_stage_result out{.global = std::move(global), .record = {}, .probed_loss = 0};
  auto& record = out.record;
  record.round = round;
  record.selected = {1, 2};
  flotilla::rejection_log rejections(record.rejections, 8);
  const flotilla::exchange_options options{.timeout = 20s, .metric_reducers = {}};

  const flotilla::task<params> ask{.kind = probe, .round = round, .parameters = out.global, .config = {}};
  const auto probed = flotilla::exchange(transport, ask, record.selected, flotilla::reply_parameters::none, 1000,
                                         options, rejections, [](auto) {});
  out.probed_loss = probed.metrics.at("loss");
  const double rate = out.probed_loss > 1 ? 0.5 : 0.1;  // far from every target: take a large step

  rule mean;
  flotilla::random_engine engine(round);
  flotilla::round_state<T> state{transport, record, out.global, engine, rejections, options, 1000};
  flotilla::fit_phase<rule>(mean, 2).run(state, {.round = round, .seed = round, .values = {{"learning_rate", rate}}});
  return out;
}

// By hand: from w = (0, 0), learner 1 (target (2, 0), 1 example) and learner 2 (target (0, 4), 3
// examples) report losses 4 and 16; the probe stage weighs each reply as one example, so the
// loss is 10 > 1 and the rate 0.5. The fit replies are (1, 0) and (0, 2), weighted 1 : 3:
// (0.25, 1.5).
void check_round(const two_stage_result& result) {
  CHECK(result.probed_loss == doctest::Approx(10));
  CHECK(result.record.status == flotilla::round_status::aggregated);
  CHECK(result.record.participants == std::vector<flotilla::learner_id>{1, 2});
  CHECK(result.record.examples == 4);
  CHECK(result.record.fit_metrics.at("learning_rate") == doctest::Approx(0.5));
  CHECK(result.record.rejections.empty());
  CHECK(result.global->values()[0] == doctest::Approx(0.25));
  CHECK(result.global->values()[1] == doctest::Approx(1.5));
}

std::vector<target_learner> two_learners() {
  std::vector<target_learner> all;
  all.emplace_back(1, vector_of(2, 0), 1);
  all.emplace_back(2, vector_of(0, 4), 3);
  return all;
}
}  // namespace

TEST_CASE("a two-stage round built from the round pieces, in memory") {
  flotilla::in_memory_transport transport(two_learners());
  check_round(two_stage_round(transport, std::make_shared<const params>(vector_of(0, 0)), 1));
}

TEST_CASE("a two-stage round built from the round pieces, over TCP") {
  flotilla::tcp::server_transport<params> transport(
      {.heartbeat_interval = 100ms, .heartbeat_timeout = 2000ms, .insecure_allow_unauthenticated_network = true});
  auto learners = two_learners();
  std::vector<std::unique_ptr<flotilla::tcp::learner_client<target_learner>>> clients;
  std::vector<std::thread> threads;
  for (auto& learner : learners)
    clients.push_back(std::make_unique<flotilla::tcp::learner_client<target_learner>>(
        learner, flotilla::tcp::client_options{.port = transport.port(), .first_backoff = 50ms, .max_backoff = 200ms}));
  for (auto& client : clients) threads.emplace_back([&client] { (void)client->run(); });
  REQUIRE(flotilla::wait_for_learners(transport, 2, 10s));
  check_round(two_stage_round(transport, std::make_shared<const params>(vector_of(0, 0)), 1));
  transport.say_goodbye();
  for (auto& thread : threads) thread.join();
}

TEST_CASE("a learner that does not know a stage fails that task alone, with the reason recorded") {
  struct fit_only {
    using parameters_type = params;
    [[nodiscard]] flotilla::learner_id id() const { return 3; }
    flotilla::reply<params> handle(const flotilla::task<params>& work) {
      throw flotilla::task_error("does not handle " + flotilla::to_string(work.kind) + " tasks");
    }
  };
  std::vector<fit_only> learners(1);
  flotilla::in_memory_transport transport(std::move(learners));
  flotilla::round_record record;
  flotilla::rejection_log rejections(record.rejections, 8);
  const std::vector<flotilla::learner_id> asked{3};
  const flotilla::task<params> ask{.kind = probe, .round = 1, .parameters = std::make_shared<const params>(vector_of(0, 0)),
                                   .config = {}};
  const auto outcome = flotilla::exchange(transport, ask, asked, flotilla::reply_parameters::none, 1000,
                                          {.timeout = 10s, .metric_reducers = {}}, rejections, [](auto) {});
  CHECK(outcome.accepted.empty());
  REQUIRE(record.rejections.size() == 1);
  CHECK(record.rejections[0].kind == probe);
  CHECK(record.rejections[0].reason.find("does not handle stage 16 tasks") != std::string::npos);
}

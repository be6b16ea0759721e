// Compressed federations: the learner's side (compressing_learner), the door's checks of coded
// replies, coded updates folded into the mean against hand-computed values, every rule given
// coded replies, and whole federations over the in-memory transport with each codec.
#include <flotilla/coordinators/synchronous.hpp>

#include <flotilla/aggregators/robust.hpp>
#include <flotilla/aggregators/server_optimizer.hpp>
#include <flotilla/models/linear_regression.hpp>
#include <flotilla/round/compressing_learner.hpp>
#include <flotilla/round/learner.hpp>
#include <flotilla/transport/in_memory.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace compression = flotilla::compression;
using flotilla::learner_id;
using flotilla::task_kind;
using params = flotilla::parameters<float>;

namespace {

params of(std::vector<float> values) {
  params p(flotilla::tensor_layout({{"w", {values.size()}}}));
  for (std::size_t i = 0; i < values.size(); ++i) p.values()[i] = values[i];
  return p;
}
std::vector<float> values_of(const params& p) { return {p.values().begin(), p.values().end()}; }

// Answers each task with the replies a test lists, then goes quiet.
struct scripted {
  using parameters_type = params;
  std::vector<learner_id> learners{};
  std::function<std::vector<flotilla::message<params>>(const flotilla::task<params>&)> respond{};
  std::deque<flotilla::message<params>> queue{};
  std::vector<flotilla::task<params>> sent{};
  std::vector<learner_id> available() const { return learners; }
  void send(const flotilla::task<params>& work, std::span<const learner_id>) {
    sent.push_back(work);
    for (auto& m : respond(work)) queue.push_back(std::move(m));
  }
  std::optional<flotilla::message<params>> receive(flotilla::deadline_clock::time_point) {
    if (queue.empty()) return std::nullopt;
    auto next = std::move(queue.front());
    queue.pop_front();
    return next;
  }
};

flotilla::reply<params> plain(learner_id learner, params p, std::int64_t examples = 1) {
  return {learner, task_kind::fit, 1, {examples, {}}, std::move(p)};
}
flotilla::reply<params> coded(learner_id learner, compression::coded_values update, std::int64_t examples = 1) {
  return {learner, task_kind::fit, 1, {examples, {}}, std::nullopt, {}, std::move(update)};
}
compression::coded_values float16_of(std::vector<float> change) {
  return compression::encode(change, compression::parse_codec("float16"), 0);
}

std::vector<std::string> reasons(const flotilla::round_record& record) {
  std::vector<std::string> out;
  for (const auto& r : record.rejections) out.push_back(std::to_string(r.learner) + ": " + r.reason);
  return out;
}

// A learner that adds a fixed change to what it is sent.
struct shifting_model {
  params p = of({0, 0, 0, 0});
  std::vector<float> change;
  const params& parameters() const { return p; }
  void set_parameters(const params& q) { p = q; }
  flotilla::local_result fit(const int&, const flotilla::fit_config&) {
    for (std::size_t i = 0; i < change.size(); ++i) p.values()[i] += change[i];
    return {1, {}};
  }
};

}  // namespace

TEST_CASE("a compressing learner replies with its change in the task's codec, and top_k carries the rest") {
  using base_learner = flotilla::learner<shifting_model, int>;
  flotilla::compressing_learner<base_learner> learner(base_learner(7, shifting_model{.change = {0.5f, -3, 1, 2}}, 0));
  auto global = std::make_shared<const params>(of({1, 1, 1, 1}));
  flotilla::task<params> work{.kind = task_kind::fit, .round = 1, .parameters = global, .config = {.round = 1, .seed = 3}};

  auto answer = learner.handle(work);  // no codec asked: parameters as they are
  REQUIRE(answer.parameters);
  CHECK(values_of(*answer.parameters) == std::vector<float>{1.5f, -2, 2, 3});
  CHECK_FALSE(answer.coded_update);

  work.reply_codec = compression::parse_codec("float16");
  answer = learner.handle(work);
  CHECK_FALSE(answer.parameters);
  REQUIRE(answer.coded_update);
  std::vector<float> change(4);
  compression::decode(*answer.coded_update, change);
  CHECK(change == std::vector<float>{0.5f, -3, 1, 2});  // all on float16's grid

  // top_k of 4 at 0.5 sends 2: -3 and 2; 0.5 and 1 are owed. Next round the change is the same,
  // so 1 + 1 = 2 and 0.5 + 0.5 = 1 are owed against -3 and 2: -3 and the tie 2 (lower index, 2) go.
  work.reply_codec = compression::parse_codec("top_k:0.5");
  answer = learner.handle(work);
  auto sent = compression::decode_sparse(answer.coded_update->bytes, 4);
  CHECK(sent.indices == std::vector<std::uint32_t>{1, 3});
  CHECK(sent.values == std::vector<float>{-3, 2});
  CHECK(std::vector<float>(learner.residual().begin(), learner.residual().end()) == std::vector<float>{0.5f, 0, 1, 0});
  answer = learner.handle(work);
  sent = compression::decode_sparse(answer.coded_update->bytes, 4);
  CHECK(sent.indices == std::vector<std::uint32_t>{1, 2});
  CHECK(sent.values == std::vector<float>{-3, 2});
  CHECK(std::vector<float>(learner.residual().begin(), learner.residual().end()) == std::vector<float>{1, 0, 0, 2});

  // Evaluate tasks pass through.
  work.kind = task_kind::evaluate;
  CHECK_THROWS_WITH_AS((void)learner.handle(work), "the model of learner 7 cannot evaluate", flotilla::task_error);
}

TEST_CASE("coded replies fold into the mean against hand-computed values, beside plain ones") {
  // Global (1, 2, 3, 4). Learner 1: change (0.5, -0.5, 0.25, 0) coded, 1 example; learner 2:
  // parameters (3, 2, 1, 0), 3 examples. FedAvg: ((1.5, 1.5, 3.25, 4) + 3 (3, 2, 1, 0)) / 4.
  scripted transport{.learners = {1, 2}};
  transport.respond = [](const flotilla::task<params>& work) -> std::vector<flotilla::message<params>> {
    if (work.kind != task_kind::fit) return {};
    return {coded(1, float16_of({0.5f, -0.5f, 0.25f, 0})), plain(2, of({3, 2, 1, 0}), 3)};
  };
  flotilla::coordinator federation(transport, of({1, 2, 3, 4}),
                                   {.quorum = 2, .compression = {.to_aggregator = compression::parse_codec("float16")}});
  const auto& record = federation.run_round();
  CHECK(record.status == flotilla::round_status::aggregated);
  CHECK(values_of(federation.global()) == std::vector<float>{2.625f, 1.875f, 1.5625f, 1});
  REQUIRE(transport.sent.size() == 1);
  CHECK(transport.sent[0].reply_codec.name() == "float16");
  CHECK_FALSE(transport.sent[0].coded_parameters);  // nothing coded towards learners
}

TEST_CASE("every rule takes coded replies: streamed into the mean family, decoded whole for the rest") {
  const auto respond = [](const flotilla::task<params>& work) -> std::vector<flotilla::message<params>> {
    if (work.kind != task_kind::fit) return {};
    return {coded(1, float16_of({1, 1})), coded(2, float16_of({2, -2})), plain(3, of({10, 10}))};
  };
  const auto options = flotilla::coordinator_options{
      .quorum = 3, .compression = {.to_aggregator = compression::parse_codec("float16")}};
  {  // The coordinate-wise median of (1, 1), (2, -2) and (10, 10) after the global (0, 0).
    scripted transport{.learners = {1, 2, 3}, .respond = respond};
    flotilla::coordinator federation(transport, of({0, 0}), options, flotilla::coordinate_median<params>{});
    federation.run_round();
    CHECK(values_of(federation.global()) == std::vector<float>{2, 1});
  }
  {  // FedAvgM with momentum 0 and rate 1 is the plain mean: (13 / 3, 9 / 3).
    scripted transport{.learners = {1, 2, 3}, .respond = respond};
    flotilla::coordinator federation(transport, of({0, 0}), options,
                                     flotilla::fedavgm<params, flotilla::mean<params>>({.learning_rate = 1, .momentum = 0}));
    federation.run_round();
    CHECK(values_of(federation.global())[0] == doctest::Approx(13.0 / 3).epsilon(1e-6));
    CHECK(values_of(federation.global())[1] == doctest::Approx(3.0).epsilon(1e-6));
  }
}

TEST_CASE("coded replies the round cannot use are rejected with the reason") {
  scripted transport{.learners = {1, 2, 3, 4, 5, 6}};
  transport.respond = [](const flotilla::task<params>& work) -> std::vector<flotilla::message<params>> {
    if (work.kind != task_kind::fit) return {};
    auto both = coded(4, float16_of({1, 1}));
    both.parameters = of({1, 1});
    auto corrupt = coded(5, float16_of({1, 1}));
    corrupt.coded_update->bytes[1] = 0x7C;  // infinity
    corrupt.coded_update->bytes[0] = 0x00;
    return {coded(1, compression::encode(std::vector<float>{1, 1}, compression::parse_codec("int8"), 1)),
            coded(2, float16_of({1, 1, 1})), coded(3, float16_of({4, 4})), std::move(both), std::move(corrupt),
            plain(6, of({2, 2}))};
  };
  flotilla::coordinator federation(transport, of({0, 0}),
                                   {.quorum = 1, .compression = {.to_aggregator = compression::parse_codec("float16")}});
  const auto& record = federation.run_round();
  CHECK(record.participants == std::vector<learner_id>{3, 6});
  CHECK(values_of(federation.global()) == std::vector<float>{3, 3});
  CHECK(reasons(record) == std::vector<std::string>{
      "1: coded update: values coded as int8:256; the round uses float16",
      "2: coded update: coded values hold 3 values; the parameters hold 2",
      "4: fit reply carries both parameters and a coded update",
      "5: coded update: coded value 0 is not finite",
  });
  // A coded reply to a round that asked for none.
  scripted uncoded{.learners = {1}};
  uncoded.respond = [](const flotilla::task<params>& work) -> std::vector<flotilla::message<params>> {
    if (work.kind != task_kind::fit) return {};
    return {coded(1, float16_of({1, 1}))};
  };
  flotilla::coordinator plain_federation(uncoded, of({0, 0}), {.quorum = 1});
  CHECK(reasons(plain_federation.run_round()) ==
        std::vector<std::string>{"1: update is coded as float16; the round asked for parameters as they are"});
}

TEST_CASE("settings that cannot work are refused") {
  scripted transport{.learners = {1}};
  CHECK_THROWS_WITH_AS(flotilla::coordinator(transport, of({0}), {.compression = {.to_learners = compression::parse_codec("top_k")}}),
                       "compression.to_learners: top_k codes a learner's change; the global parameters go whole (choose "
                       "float16, bfloat16, int8 or int4)",
                       flotilla::configuration_error);
  CHECK_THROWS_WITH_AS(
      flotilla::coordinator(transport, of({0}), {.compression = {.to_aggregator = {.kind = compression::codec::int8, .block = 1}}}),
      "a block holds 2 to 2^20 values; got 1", flotilla::configuration_error);
}

namespace {
using linear = flotilla::linear_regression<float>;

linear::data_type regression_data(std::size_t examples, std::uint64_t seed) {
  flotilla::random_engine engine(seed);
  linear::data_type data{Eigen::MatrixXf(3, static_cast<Eigen::Index>(examples)), Eigen::VectorXf(static_cast<Eigen::Index>(examples))};
  for (Eigen::Index i = 0; i < data.features.cols(); ++i) {
    for (Eigen::Index f = 0; f < 3; ++f) data.features(f, i) = float(flotilla::standard_normal(engine));
    data.targets(i) = 2 * data.features(0, i) - data.features(1, i) + 0.5f * data.features(2, i) + 0.25f;
  }
  return data;
}

// Final parameters of a federation of 4 linear learners after `rounds` rounds.
std::vector<float> federate(const flotilla::compression::options& codecs, std::uint64_t rounds) {
  using wrapped = flotilla::compressing_learner<flotilla::learner<linear, linear::data_type>>;
  std::vector<wrapped> learners;
  for (learner_id id = 0; id < 4; ++id)
    learners.emplace_back(flotilla::learner<linear, linear::data_type>(
        id, linear(3, {.learning_rate = 0.05, .epochs = 1, .batch_size = 10}), regression_data(50, id + 1)));
  flotilla::in_memory_transport transport(std::move(learners), 2);
  flotilla::coordinator federation(transport, linear(3).parameters(), {.quorum = 4, .seed = 11, .compression = codecs});
  federation.run(flotilla::stop::after_rounds(rounds));
  return values_of(federation.global());
}
}  // namespace

TEST_CASE("a federated linear model ends where it should with every codec") {
  const std::vector<float> truth{2, -1, 0.5f, 0.25f};
  const auto uncompressed = federate({}, 30);
  for (std::size_t i = 0; i < truth.size(); ++i) CHECK(uncompressed[i] == doctest::Approx(truth[i]).epsilon(1e-3));
  for (const auto& codecs : std::vector<std::pair<const char*, const char*>>{
           {"none", "float16"}, {"bfloat16", "bfloat16"}, {"float16", "int8:2"}, {"int8:2", "int4:2"}, {"none", "top_k:0.25"}}) {
    const char* down = codecs.first;  // named, not bound: Clang 14 cannot capture a structured binding
    const char* up = codecs.second;
    CAPTURE(down);
    CAPTURE(up);
    const auto compressed = federate({.to_learners = compression::parse_codec(down), .to_aggregator = compression::parse_codec(up)}, 30);
    for (std::size_t i = 0; i < truth.size(); ++i) CHECK(compressed[i] == doctest::Approx(truth[i]).epsilon(0.02));
  }
}

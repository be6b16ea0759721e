#include <flotilla/algorithms/secure_aggregation/aggregator.hpp>

#include <flotilla/aggregators/server_optimizer.hpp>
#include <flotilla/algorithms/secure_aggregation/secure_learner.hpp>
#include <flotilla/coordinators/synchronous.hpp>
#include <flotilla/persistence/checkpoint.hpp>
#include <flotilla/round/learner.hpp>
#include <flotilla/round/stopping.hpp>
#include <flotilla/transport/in_memory.hpp>

#include <doctest/doctest.h>

#include "../coordinators/scripted_transport.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

// Secure rounds through the coordinator over the in-memory transport: the four stages as task
// kinds with payloads, every learner a secure_learner. Results against the plain means computed
// by hand; dropouts at each stage; forged replies; distributed DP's noise and accounting.

namespace secagg = flotilla::secure_aggregation;
using namespace scripted;

namespace {

// Training moves the model to a fixed point, so each update is known by hand.
struct jump_model {
  params p = of({0, 0, 0});
  params target = of({0, 0, 0});
  std::int64_t examples = 1;
  const params& parameters() const { return p; }
  void set_parameters(const params& q) { p = q; }
  flotilla::local_result fit(const int&, const flotilla::fit_config&) {
    p = target;
    return {examples, {{"loss", double(examples)}}};
  }
};
using plain_learner = flotilla::learner<jump_model, int>;

// A secure learner that can drop out at one stage, or rewrite its replies.
struct test_learner {
  using parameters_type = params;
  secagg::secure_learner<plain_learner> inner;
  std::optional<task_kind> drop_at{};
  std::function<void(flotilla::reply<params>&)> tamper{};

  learner_id id() const { return inner.id(); }
  flotilla::reply<params> handle(const flotilla::task<params>& work) {
    if (drop_at && work.kind == *drop_at) throw flotilla::task_error("dropped out");
    auto answer = inner.handle(work);
    if (tamper) tamper(answer);
    return answer;
  }
};

test_learner make(learner_id id, std::vector<double> target, std::int64_t examples = 1) {
  return {secagg::secure_learner<plain_learner>(plain_learner(id, jump_model{.target = of(std::move(target)), .examples = examples}, 0)),
          {}, {}};
}

// Learner i (1 to n) jumps to (i / 4, -i / 2, i / 8): within the clipping range of 8.
std::vector<test_learner> learners(std::size_t n) {
  std::vector<test_learner> out;
  for (std::size_t i = 1; i <= n; ++i) out.push_back(make(i, {double(i) / 4, -double(i) / 2, double(i) / 8}));
  return out;
}

// The mean of learners' targets in `ids`, as above.
std::vector<double> mean_of(const std::vector<learner_id>& ids) {
  std::vector<double> sum(3, 0);
  for (const auto i : ids) {
    sum[0] += double(i) / 4;
    sum[1] += -double(i) / 2;
    sum[2] += double(i) / 8;
  }
  for (auto& value : sum) value /= double(ids.size());
  return sum;
}

const secagg::quantization q{};  // Flower's defaults: a step of 16 / (2^22 - 1)

// Within the quantization error: stochastic rounding moves each value by less than a step, so
// the mean by less than one step.
void check_near(const params& result, const std::vector<double>& expected) {
  REQUIRE(result.values().size() == expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) CHECK(std::abs(result.values()[i] - expected[i]) < q.step());
}

// All pairs (the degree is cut to n - 1) and the threshold derived from it: half the degree.
secagg::secure_options equal_weights() { return {.degree = 1000, .max_weight = 0}; }

}  // namespace

TEST_CASE("a secure round without dropouts ends within the quantization error of the plain mean") {
  flotilla::in_memory_transport transport(learners(6), 2);
  flotilla::coordinator federation(transport, of({0, 0, 0}), {.quorum = 6}, secagg::secure_mean<params>(equal_weights()));
  const auto& record = federation.run_round();
  CHECK(record.status == flotilla::round_status::aggregated);
  CHECK(record.rejections.empty());
  CHECK(record.participants == std::vector<learner_id>{1, 2, 3, 4, 5, 6});
  CHECK(record.examples == 6);
  CHECK(record.central_metrics.at("secure.contributors") == 6);
  CHECK(record.central_metrics.at("secure.degree") == 5);  // six learners: the complete graph
  CHECK(record.central_metrics.at("secure.threshold") == 3);
  CHECK(record.fit_metrics.at("loss") == 1);
  check_near(federation.global(), mean_of({1, 2, 3, 4, 5, 6}));  // (0.875, -1.75, 0.4375)
}

TEST_CASE("weights are example counts capped at max_weight, and travel masked") {
  std::vector<test_learner> three;
  three.push_back(make(1, {1, 1, 1}, 10));
  three.push_back(make(2, {4, 4, 4}, 30));
  three.push_back(make(3, {7, 7, 7}, 500));  // capped at 100
  flotilla::in_memory_transport transport(std::move(three), 1);
  flotilla::coordinator federation(transport, of({0, 0, 0}), {.quorum = 3}, secagg::secure_mean<params>({.degree = 2, .max_weight = 100}));
  const auto& record = federation.run_round();
  REQUIRE(record.status == flotilla::round_status::aggregated);
  // (0.1 * 1 + 0.3 * 4 + 1 * 7) / 1.4 = 8.3 / 1.4; the weights are quantized too, so the error
  // is a few steps over the total weight.
  for (double value : values_of(federation.global())) CHECK(std::abs(value - 8.3 / 1.4) < 10 * q.step());
  CHECK(record.examples == 140);
}

TEST_CASE("dropouts at every stage: the sum of exactly the right survivors") {
  struct stage_case {
    task_kind kind;
    bool in_sum;  // a learner that dropped during unmasking had already sent its input
  };
  for (const auto& c : {stage_case{secagg::advertise_keys_kind, false}, stage_case{secagg::share_keys_kind, false},
                        stage_case{secagg::masked_input_kind, false}, stage_case{secagg::unmasking_kind, true}}) {
    CAPTURE(flotilla::to_string(c.kind));
    auto all = learners(8);
    all[2].drop_at = c.kind;  // learner 3
    all[6].drop_at = c.kind;  // learner 7
    flotilla::in_memory_transport transport(std::move(all), 2);
    flotilla::coordinator federation(transport, of({0, 0, 0}), {.quorum = 5}, secagg::secure_mean<params>(equal_weights()));
    const auto& record = federation.run_round();
    REQUIRE(record.status == flotilla::round_status::aggregated);
    const std::vector<learner_id> survivors =
        c.in_sum ? std::vector<learner_id>{1, 2, 3, 4, 5, 6, 7, 8} : std::vector<learner_id>{1, 2, 4, 5, 6, 8};
    CHECK(record.participants == survivors);
    check_near(federation.global(), mean_of(survivors));
    std::vector<learner_id> dropped;  // in whatever order the two workers ran them
    for (const auto& rejection : record.rejections) {
      dropped.push_back(rejection.learner);
      CHECK(rejection.kind == c.kind);
      CHECK(rejection.reason == "learner threw: dropped out");
    }
    std::ranges::sort(dropped);
    CHECK(dropped == std::vector<learner_id>{3, 7});
  }
}

TEST_CASE("too many dropouts abort the round with the reason and keep the global parameters") {
  auto all = learners(6);  // complete graph, threshold 3
  for (std::size_t i = 0; i < 4; ++i) all[i].drop_at = secagg::masked_input_kind;
  flotilla::in_memory_transport transport(std::move(all), 2);
  flotilla::coordinator federation(transport, of({9, 9, 9}), {.quorum = 1}, secagg::secure_mean<params>(equal_weights()));
  const auto& record = federation.run_round();
  CHECK(record.status == flotilla::round_status::discarded);
  CHECK(record.note == "secure aggregation aborted: only 2 learners sent masked input; the threshold is 3; global parameters kept");
  CHECK(values_of(federation.global()) == std::vector<double>{9, 9, 9});

  auto early = learners(6);
  for (std::size_t i = 0; i < 4; ++i) early[i].drop_at = secagg::advertise_keys_kind;
  flotilla::in_memory_transport transport2(std::move(early), 2);
  flotilla::coordinator federation2(transport2, of({9, 9, 9}), {.quorum = 1}, secagg::secure_mean<params>(equal_weights()));
  CHECK(federation2.run_round().note ==
        "secure aggregation aborted: only 2 learners advertised keys; the threshold is 3; global parameters kept");
}

TEST_CASE("forged replies are rejected with the reason and the round goes on") {
  auto all = learners(7);
  // Learner 2 claims to be index 5 in its masked input.
  all[1].tamper = [](flotilla::reply<params>& answer) {
    if (answer.kind == secagg::masked_input_kind) answer.payload[0] = 5;
  };
  // Learner 4 sends a masked vector one value short.
  all[3].tamper = [](flotilla::reply<params>& answer) {
    if (answer.kind != secagg::masked_input_kind) return;
    auto input = secagg::decode_masked_input(answer.payload, 100, 3);
    input.values.pop_back();
    answer.payload = secagg::encode(input);
  };
  // Learner 6 sends keys with a byte missing.
  all[5].tamper = [](flotilla::reply<params>& answer) {
    if (answer.kind == secagg::advertise_keys_kind) answer.payload.pop_back();
  };
  flotilla::in_memory_transport transport(std::move(all), 1);  // one worker: replies in order
  flotilla::coordinator federation(transport, of({0, 0, 0}), {.quorum = 3}, secagg::secure_mean<params>(equal_weights()));
  const auto& record = federation.run_round();
  REQUIRE(record.status == flotilla::round_status::aggregated);
  CHECK(record.participants == std::vector<learner_id>{1, 3, 5, 7});
  check_near(federation.global(), mean_of({1, 3, 5, 7}));
  CHECK(reasons(record) ==
        std::vector<std::string>{"6: advertised keys is truncated: mask public key needs 32 bytes, 31 remain",
                                 "2: a masked input names learner index 5; the sender's is 2",
                                 "4: a masked input holds 2 values; the round expects 3"});
}

TEST_CASE("a share sealed for another learner, or with a broken tag, is set aside by its recipient") {
  auto all = learners(6);
  // Learner 1 corrupts every ciphertext it sends: its neighbours cannot open its shares, so it
  // cannot be unmasked if it drops; here it does not, and the round still recovers everyone.
  all[0].tamper = [](flotilla::reply<params>& answer) {
    if (answer.kind != secagg::share_keys_kind) return;
    auto messages = secagg::decode_share_list(answer.payload, 100);
    for (auto& message : messages) message.ciphertext[0] ^= 1;
    answer.payload = secagg::encode(std::span<const secagg::sealed_shares>(messages));
  };
  flotilla::in_memory_transport transport(std::move(all), 1);
  flotilla::coordinator federation(transport, of({0, 0, 0}), {.quorum = 6}, secagg::secure_mean<params>(equal_weights()));
  const auto& record = federation.run_round();
  // Learner 1's self-mask seed has no intact shares at all: it cannot be removed, so the round
  // aborts rather than release a masked sum.
  CHECK(record.status == flotilla::round_status::discarded);
  CHECK(record.note == "secure aggregation aborted: learner 1's self-mask seed has 0 shares; the threshold is 3; global "
                       "parameters kept");
  const auto& bystander = transport.learners()[1]->inner;  // learner 2 saw the broken tag
  REQUIRE(!bystander.rejections().empty());
  CHECK(bystander.rejections()[0] == "shares from learner 1 fail authentication");
}

TEST_CASE("the inner rule takes the secure mean as one update: FedAvgM's momentum over two rounds") {
  flotilla::in_memory_transport transport(learners(4), 2);
  using momentum = flotilla::fedavgm<params, flotilla::mean<params>>;
  flotilla::coordinator federation(transport, of({0, 0, 0}), {.quorum = 4},
                                   secagg::secure_mean<params, momentum>(equal_weights(), momentum({.learning_rate = 1, .momentum = 0.5})));
  federation.run_round();
  check_near(federation.global(), mean_of({1, 2, 3, 4}));  // first step: the mean itself
}

TEST_CASE("distributed DP: each learner's discrete Gaussian share sums to the noise the accountant is given") {
  // 10 learners whose update is zero over 4,000 values: what is left of the mean is the noise.
  std::vector<test_learner> all;
  for (learner_id id = 1; id <= 10; ++id) all.push_back(make(id, std::vector<double>(4000, 0.0)));
  flotilla::in_memory_transport transport(std::move(all), 2);
  const flotilla::privacy::accountant spent(1.2, 1, 1e-5);
  secagg::secure_options options{.dropout_rate = 0.2, .degree = 9, .max_weight = 0,
                                 .noise = secagg::distributed_dp{.noise_multiplier = 1.2, .clip_norm = 0.5, .accounting = spent}};
  flotilla::coordinator federation(transport, params(flotilla::tensor_layout({{"w", {4000}}})), {.quorum = 10},
                                   secagg::secure_mean<params>(options));
  const auto& record = federation.run_round();
  REQUIRE(record.status == flotilla::round_status::aggregated);
  // Delta = C / s + sqrt(d) steps; each learner adds z Delta / sqrt(8) (m = ceil(10 * 0.8) = 8),
  // so 10 learners' noise is z Delta sqrt(10 / 8): a noise multiplier of 1.2 sqrt(1.25).
  const double step = q.step(), delta = 0.5 / step + std::sqrt(4000.0);
  CHECK(record.central_metrics.at("privacy.noise_multiplier") == doctest::Approx(1.2 * std::sqrt(1.25)).epsilon(1e-12));
  const double stddev = 1.2 * delta / std::sqrt(8.0) * std::sqrt(10.0) * step / 10;
  CHECK(record.central_metrics.at("privacy.noise_stddev") == doctest::Approx(stddev).epsilon(1e-12));
  CHECK(record.central_metrics.at("privacy.epsilon") == spent.epsilon(1));
  CHECK(record.central_metrics.at("privacy.clip_norm") == 0.5);
  // The sample standard deviation of 4,000 values is within 5% of it (5.6 standard errors).
  double sum = 0, squares = 0;
  for (double value : federation.global().values()) {
    sum += value;
    squares += value * value;
  }
  const double mean = sum / 4000, sample = std::sqrt(squares / 4000 - mean * mean);
  CHECK(std::abs(sample / stddev - 1) < 0.05);
  CHECK(std::abs(mean) < 5 * stddev / std::sqrt(4000.0));
}

TEST_CASE("distributed DP aborts a round whose survivors carry too little noise") {
  auto all = learners(10);
  for (std::size_t i = 0; i < 3; ++i) all[i].drop_at = secagg::masked_input_kind;
  flotilla::in_memory_transport transport(std::move(all), 2);
  secagg::secure_options options{.dropout_rate = 0.2, .degree = 9, .max_weight = 0,
                                 .noise = secagg::distributed_dp{.noise_multiplier = 1}};
  flotilla::coordinator federation(transport, of({0, 0, 0}), {.quorum = 1}, secagg::secure_mean<params>(options));
  const auto& record = federation.run_round();
  CHECK(record.status == flotilla::round_status::discarded);
  CHECK(record.note == "secure aggregation aborted: 7 learners sent masked input; 8 are needed (the quorum, and enough "
                       "learners' noise for distributed DP); global parameters kept");
}

TEST_CASE("settings that cannot work are refused by name") {
  const auto refused = [](secagg::secure_options options) {
    try {
      secagg::secure_mean<params> rule(options);
    } catch (const flotilla::configuration_error& error) {
      return std::string(error.what());
    }
    return std::string("accepted");
  };
  CHECK(refused({.max_weight = 1000, .noise = secagg::distributed_dp{}}) ==
        "distributed DP needs every update to weigh the same (a count is the learner's own word and would scale its "
        "sensitivity); set max_weight to 0");
  CHECK(refused({.max_weight = 0, .noise = secagg::distributed_dp{.clip_norm = 9}}) ==
        "distributed DP's clip_norm must be in (0, clipping_range = 8]; got 9");
  CHECK(refused({.threshold = 1}) == "a threshold of 1 would let any one neighbour rebuild a secret");
  CHECK(refused({.max_weight = -1}) == "max_weight must be 0 (equal weights) or positive");
}

TEST_CASE("a learner refuses a setup it cannot safely follow, and stages out of turn") {
  const auto refused = [](secagg::round_setup setup) {
    try {
      secagg::learner_session session(std::move(setup));
    } catch (const flotilla::configuration_error& error) {
      return std::string(error.what());
    }
    return std::string("accepted");
  };
  const secagg::round_setup good{.round = 1, .learners = 4, .index = 1, .neighbours = {2, 3, 4}, .threshold = 2, .values = 3};
  CHECK(refused(good) == "accepted");
  auto bad = good;
  bad.threshold = 1;
  CHECK(refused(bad) == "a threshold of 1 would let any one neighbour rebuild this learner's secrets");
  bad = good;
  bad.threshold = 4;
  CHECK(refused(bad) == "a threshold of 4 cannot work with 3 neighbours");
  bad = good;
  bad.neighbours = {2, 3, 9};
  CHECK(refused(bad) == "a learner's index and neighbours must be in [1, 4]");
  bad = good;
  bad.neighbours = {1, 2, 3};
  CHECK(refused(bad) == "a learner's neighbours must be distinct and not include itself");
  bad = good;
  bad.learners = 2000;
  CHECK(refused(bad) ==
        "the sum of 2000 values quantized to [0, 4194303] overflows the modulus 2^32; lower quantization_range or raise "
        "modulus_bits");
  bad = good;
  bad.encoding.noise_stddev = -1;
  CHECK(refused(bad) == "a secure round's max_weight, clip_norm and noise_stddev must be non-negative and finite (noise at "
                        "most 2^20 steps)");

  // A stage for a round the learner holds no session for fails that task alone.
  auto learner = make(1, {0, 0, 0});
  flotilla::task<params> work;
  work.kind = secagg::share_keys_kind;
  work.round = 5;
  CHECK_THROWS_WITH_AS(learner.handle(work), "stage 4 task for round 5, but this learner holds no secure session for that round",
                       flotilla::task_error);
  work.kind = secagg::advertise_keys_kind;
  work.round = 6;
  work.payload = secagg::encode(good);
  CHECK_THROWS_WITH_AS(learner.handle(work), "a secure round's setup names round 1 in a task of round 6", flotilla::task_error);

  // A round's secrets are gone once the learner is asked anything else.
  work.round = 1;
  CHECK(secagg::decode_advertised_keys(learner.handle(work).payload).index == 1);
  flotilla::task<params> fit;
  fit.round = 2;
  fit.parameters = std::make_shared<const params>(of({0, 0, 0}));
  (void)learner.handle(fit);
  work.kind = secagg::share_keys_kind;
  work.payload = secagg::encode(std::span<const secagg::advertised_keys>());
  CHECK_THROWS_WITH_AS(learner.handle(work), "stage 4 task for round 1, but this learner holds no secure session for that round",
                       flotilla::task_error);
}

TEST_CASE("the graph of a round: sparse where the targets allow, all pairs where they do not") {
  const secagg::secure_options defaults{};  // 10% dropouts, 10% colluders
  const auto of = [&](std::size_t n) {
    const auto graph = secagg::graph_for(n, defaults);
    return std::pair{graph.degree, graph.threshold};
  };
  CHECK(of(100) == std::pair{secagg::find_graph_parameters(100, 0.1, 0.1).degree,
                             secagg::find_graph_parameters(100, 0.1, 0.1).threshold});
  CHECK(of(100).first < 99);
  CHECK(of(4) == std::pair<std::size_t, std::size_t>{3, 2});  // the finder's t = k = 2 tolerates no dropout
  CHECK(of(3) == std::pair<std::size_t, std::size_t>{2, 2});
  CHECK_THROWS_WITH_AS((void)secagg::graph_for(2, defaults), "a threshold of 2 cannot work with 1 neighbours",
                       flotilla::configuration_error);
  CHECK(secagg::graph_for(50, {.degree = 1000, .threshold = 0}).degree == 49);
  CHECK(secagg::graph_for(50, {.degree = 1000, .threshold = 0}).threshold == 25);
  CHECK(secagg::graph_for(50, {.corruption_rate = 0.6, .degree = 1000}).threshold == 30);  // floor(49 * 0.6) + 1
}

TEST_CASE("a checkpoint keeps the rounds released, so the privacy spent goes on from there") {
  const flotilla::privacy::accountant spent(1.5, 1, 1e-5);
  const secagg::secure_options options{.degree = 1000, .max_weight = 0,
                                       .noise = secagg::distributed_dp{.noise_multiplier = 1.5, .accounting = spent}};
  flotilla::in_memory_transport transport(learners(5), 2);
  flotilla::coordinator federation(transport, of({0, 0, 0}), {.quorum = 5}, secagg::secure_mean<params>(options));
  federation.run(flotilla::stop::after_rounds(2));
  const auto path = std::filesystem::temp_directory_path() / "flotilla_secure_checkpoint.bin";
  flotilla::save_checkpoint(federation, path);
  flotilla::coordinator restored(transport, of({0, 0, 0}), {.quorum = 5}, secagg::secure_mean<params>(options));
  flotilla::load_checkpoint(restored, path);
  std::filesystem::remove(path);
  CHECK(restored.rule().rounds() == 2);
  const auto& record = restored.run_round();
  REQUIRE(record.status == flotilla::round_status::aggregated);
  CHECK(record.central_metrics.at("privacy.epsilon") == spent.epsilon(3));
}

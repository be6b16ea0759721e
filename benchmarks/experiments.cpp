// The strategy experiment table: the Fashion-MNIST MLP (784-128-10) federated over 50 in-memory
// learners, every learner in every round, one local epoch of minibatch SGD (rate 0.1, batch 32).
//  - Non-IID: Dirichlet label skew with alpha 0.1 and 1.0 under FedAvg, FedAvgM, FedProx,
//    FedAdam, FedYogi and SCAFFOLD.
//  - Attack: an IID split where 10 of the 50 learners (20%) send their update sign-flipped and
//    scaled tenfold, under FedAvg, the coordinate-wise median, the trimmed mean, Krum, Multi-Krum and Bulyan
//    (f = 10), next to attack-free FedAvg; once at the constant local rate 0.1 and once with the
//    rate decaying as 0.1 * 10 / (t + 9) in round t, the step sizes Krum's convergence result
//    assumes (sum of rates infinite, sum of squares finite; Blanchard et al. 2017).
// Reference: the same model trained centrally, one epoch over all 60,000 images per "round".
// Prints a Markdown table: rounds to reach 80% test accuracy and the final accuracy.
// Usage: bench_experiments [rounds=40] [part=all|non-iid|attack|attack-decaying|krum|multi-krum] [data directory]
// ("krum" runs only attack-free FedAvg and Krum under attack, to follow Krum over more rounds;
// "multi-krum" only attack-free FedAvg and Multi-Krum under attack, at both rates.)
#include <flotilla/data/fashion_mnist.hpp>
#include <flotilla/flotilla.hpp>
#include <flotilla/models.hpp>
#include <flotilla/data/partition.hpp>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace {

using model = flotilla::mlp<float>;
using data = model::data_type;
using params = model::parameters_type;

constexpr std::size_t learner_count = 50;
constexpr std::size_t attackers = 10;

model make_model() { return model({784, 128, 10}, {.learning_rate = 0.1, .epochs = 1, .batch_size = 32}, 1); }

// Trains honestly, then sends x - 10 (y - x) instead of y, with its true example count.
struct sign_flipper {
  model inner = make_model();
  bool attacks = false;
  params sent = inner.parameters();
  const params& parameters() const { return attacks ? sent : inner.parameters(); }
  void set_parameters(const params& p) { inner.set_parameters(p); }
  flotilla::local_result fit(const data& local, const flotilla::fit_config& config) {
    const params start = inner.parameters();
    auto result = inner.fit(local, config);
    if (attacks) {
      sent = start;
      flotilla::axpy(sent, -10.0f, flotilla::difference(inner.parameters(), start));
    }
    return result;
  }
};

struct outcome {
  std::optional<std::size_t> rounds_to_80;
  double final_accuracy = 0;
};

outcome summarize(const flotilla::history& history) {
  outcome out;
  for (const auto& r : history.rounds) {
    const double accuracy = r.metric("central.accuracy").value_or(0);
    if (!out.rounds_to_80 && accuracy >= 0.80) out.rounds_to_80 = r.round;
    out.final_accuracy = accuracy;
  }
  return out;
}

// Runs `rounds` rounds of a federation of `members` under `rule`, evaluating the global model
// on the test set after each; `model_part` maps the global parameters to the MLP's.
template <class Learner, class Global, class Rule, class ModelPart>
outcome federate(std::vector<Learner> members, Global initial, Rule rule, const data& test, std::size_t rounds,
                 flotilla::settings fit_settings, ModelPart model_part,
                 decltype(flotilla::coordinator_options::fit_schedule) schedule = {}) {
  flotilla::in_memory_transport transport(std::move(members));
  flotilla::coordinator federation(
      transport, std::move(initial),
      {.quorum = learner_count, .seed = 3, .fit_settings = std::move(fit_settings), .fit_schedule = std::move(schedule)},
      std::move(rule));
  auto evaluator = make_model();
  federation.evaluate_centrally([&](const Global& global) {
    evaluator.set_parameters(model_part(global));
    return evaluator.evaluate(test).metrics;
  });
  federation.run(flotilla::stop::after_rounds(rounds));
  return summarize(federation.history());
}

const auto same = [](const params& p) { return p; };

std::vector<flotilla::learner<model, data>> plain_learners(const data& train,
                                                           const std::vector<std::vector<std::size_t>>& parts) {
  std::vector<flotilla::learner<model, data>> members;
  for (std::size_t i = 0; i < parts.size(); ++i) members.emplace_back(i, make_model(), train.subset(parts[i]));
  return members;
}

void print_row(const std::string& setting, const std::string& strategy, const outcome& result) {
  const std::string reached = result.rounds_to_80 ? std::to_string(*result.rounds_to_80) : "not reached";
  std::printf("| %s | %s | %s | %.4f |\n", setting.c_str(), strategy.c_str(), reached.c_str(), result.final_accuracy);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t rounds = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 40;
  const std::string part = argc > 2 ? argv[2] : "all";
  if (part != "all" && part != "non-iid" && part != "attack" && part != "attack-decaying" && part != "krum" &&
      part != "multi-krum") {
    std::fprintf(stderr, "part must be all, non-iid, attack, attack-decaying, krum or multi-krum; got %s\n", part.c_str());
    return 2;
  }
  const std::filesystem::path directory = argc > 3 ? argv[3] : flotilla::fashion_mnist_default_directory;
  const auto train = flotilla::load_fashion_mnist(flotilla::fashion_mnist_split::train, directory);
  const auto test = flotilla::load_fashion_mnist(flotilla::fashion_mnist_split::test, directory);
  const params initial = make_model().parameters();

  std::printf("| setting | strategy | rounds to 80%% | final test accuracy (round %zu) |\n", rounds);
  std::printf("|---|---|---|---|\n");

  // The reference: one model, all the data, one epoch per round.
  if (part != "krum" && part != "multi-krum" && part != "attack-decaying") {
    auto central = make_model();
    flotilla::history history;
    for (std::size_t epoch = 1; epoch <= rounds; ++epoch) {
      central.fit(train, {.round = epoch, .seed = epoch, .values = {}});
      flotilla::round_record record;
      record.round = epoch;
      record.central_metrics = central.evaluate(test).metrics;
      history.rounds.push_back(record);
    }
    print_row("centralized (reference)", "one model, all data", summarize(history));
  }

  for (const double alpha : {0.1, 1.0}) {
    if (part != "all" && part != "non-iid") break;
    const auto parts = flotilla::partition_dirichlet(train.labels, learner_count, alpha, 11, 10);
    const std::string setting = "Dirichlet alpha=" + std::string(alpha < 1 ? "0.1" : "1.0");
    print_row(setting, "FedAvg",
              federate(plain_learners(train, parts), initial, flotilla::weighted_mean<params>{}, test, rounds, {}, same));
    print_row(setting, "FedAvgM (lr 1, momentum 0.5)",
              federate(plain_learners(train, parts), initial, flotilla::fedavgm<params>({1.0, 0.5}), test, rounds, {},
                       same));
    print_row(setting, "FedProx (mu 0.01)",
              federate(plain_learners(train, parts), initial, flotilla::weighted_mean<params>{}, test, rounds,
                       {{"proximal_mu", 0.01}}, same));
    print_row(setting, "FedAdam (lr 0.01)",
              federate(plain_learners(train, parts), initial, flotilla::fedadam<params>({.learning_rate = 0.01}), test,
                       rounds, {}, same));
    print_row(setting, "FedYogi (lr 0.01)",
              federate(plain_learners(train, parts), initial, flotilla::fedyogi<params>({.learning_rate = 0.01}), test,
                       rounds, {}, same));
    std::vector<flotilla::learner<flotilla::scaffold_model<model>, data>> scaffold_members;
    for (std::size_t i = 0; i < parts.size(); ++i)
      scaffold_members.emplace_back(i, flotilla::scaffold_model(make_model()), train.subset(parts[i]));
    print_row(setting, "SCAFFOLD",
              federate(std::move(scaffold_members), flotilla::scaffold_parameters<float>(initial),
                       flotilla::scaffold<float>({.learners = learner_count}), test, rounds, {},
                       [&](const flotilla::scaffold_parameters<float>& global) {
                         params p = initial;
                         std::ranges::copy(global.model_values(), p.values().begin());
                         return p;
                       }));
  }

  if (part == "non-iid") return 0;
  const auto iid = flotilla::partition_iid(train.size(), learner_count, 11);
  const auto attacked = [&] {
    std::vector<flotilla::learner<sign_flipper, data>> members;
    for (std::size_t i = 0; i < iid.size(); ++i)
      members.emplace_back(i, sign_flipper{.attacks = i < attackers}, train.subset(iid[i]));
    return members;
  };
  // The attack table, at one local learning-rate schedule (none: the constant 0.1).
  const auto attack_table = [&](const std::string& rate, decltype(flotilla::coordinator_options::fit_schedule) schedule) {
    const std::string clean = "IID, no attackers" + rate, attack = "IID, 20% sign-flipping x10" + rate;
    const auto run = [&](auto members, auto rule) {
      return federate(std::move(members), initial, std::move(rule), test, rounds, {}, same, schedule);
    };
    print_row(clean, "FedAvg", run(plain_learners(train, iid), flotilla::weighted_mean<params>{}));
    if (part == "multi-krum") {
      print_row(attack, "Multi-Krum (f 10, 20 selected)", run(attacked(), flotilla::krum<params>(attackers, 20)));
      return;
    }
    if (part == "krum") {
      print_row(attack, "Krum (f 10)", run(attacked(), flotilla::krum<params>(attackers)));
      print_row(attack, "FedAvgM (lr 0.2, momentum 0.5) over Krum (f 10)",
                run(attacked(), flotilla::fedavgm<params, flotilla::krum<params>>({0.2, 0.5},
                                                                                   flotilla::krum<params>(attackers))));
      return;
    }
    print_row(attack, "FedAvg", run(attacked(), flotilla::weighted_mean<params>{}));
    print_row(attack, "median", run(attacked(), flotilla::coordinate_median<params>{}));
    print_row(attack, "trimmed mean (beta 0.2)", run(attacked(), flotilla::trimmed_mean<params>(0.2)));
    print_row(attack, "Krum (f 10)", run(attacked(), flotilla::krum<params>(attackers)));
    print_row(attack, "Multi-Krum (f 10, 20 selected)", run(attacked(), flotilla::krum<params>(attackers, 20)));
    print_row(attack, "Bulyan (f 10)", run(attacked(), flotilla::bulyan<params>(attackers)));
  };
  if (part != "attack-decaying") attack_table("", {});
  if (part == "all" || part == "attack-decaying" || part == "multi-krum")
    attack_table(", decaying rate", [](std::uint64_t round) {
      return flotilla::settings{{"learning_rate", 0.1 * 10.0 / (double(round) + 9.0)}};
    });
}

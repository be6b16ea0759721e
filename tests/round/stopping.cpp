#include <flotilla/round/stopping.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <optional>
#include <vector>

namespace {
// A history whose rounds carry the given central accuracy values (nullopt: no metric) and
// elapsed times of one second per round.
flotilla::history with_accuracy(std::vector<std::optional<double>> values) {
  flotilla::history h;
  for (std::size_t i = 0; i < values.size(); ++i) {
    flotilla::round_record r;
    r.round = i + 1;
    r.elapsed_seconds = double(i + 1);
    if (values[i]) r.central_metrics["accuracy"] = *values[i];
    r.fit_metrics["loss"] = 1.0 / double(i + 1);
    h.rounds.push_back(r);
  }
  return h;
}
}  // namespace

TEST_CASE("after_rounds stops once the budget is spent") {
  const auto stop = flotilla::stop::after_rounds(3);
  CHECK_FALSE(stop(with_accuracy({})));
  CHECK_FALSE(stop(with_accuracy({0.1, 0.2})));
  CHECK(stop(with_accuracy({0.1, 0.2, 0.3})) == "reached the round budget of 3");
  CHECK(flotilla::stop::after_rounds(0)(with_accuracy({})));
}

TEST_CASE("after_time compares the elapsed time at the end of the last round") {
  const auto stop = flotilla::stop::after_time(std::chrono::milliseconds(2500));
  CHECK_FALSE(stop(with_accuracy({})));
  CHECK_FALSE(stop(with_accuracy({0.1, 0.2})));
  CHECK(stop(with_accuracy({0.1, 0.2, 0.3})) == "reached the time budget of 2.5 s");
}

TEST_CASE("when_metric_reaches fires on the latest round only") {
  const auto higher = flotilla::stop::when_metric_reaches("accuracy", 0.8, flotilla::better::higher);
  CHECK_FALSE(higher(with_accuracy({0.9, 0.7})));  // reached once, but not now
  CHECK_FALSE(higher(with_accuracy({0.79})));
  CHECK(higher(with_accuracy({0.5, 0.8})) == "accuracy reached 0.8 (target 0.8)");
  CHECK_FALSE(higher(with_accuracy({std::nullopt})));
  const auto lower = flotilla::stop::when_metric_reaches("fit.loss", 0.25, flotilla::better::lower);
  CHECK_FALSE(lower(with_accuracy({0.1, 0.1, 0.1})));  // loss 1/3
  CHECK(lower(with_accuracy({0.1, 0.1, 0.1, 0.1})) == "fit.loss reached 0.25 (target 0.25)");
}

TEST_CASE("when_no_improvement counts rounds since the best value") {
  const auto stop = flotilla::stop::when_no_improvement("accuracy", 2, flotilla::better::higher);
  CHECK_FALSE(stop(with_accuracy({0.5, 0.6, 0.7})));
  CHECK_FALSE(stop(with_accuracy({0.5, 0.7, 0.6})));  // one round without improvement
  CHECK(stop(with_accuracy({0.5, 0.7, 0.6, 0.7})) == "accuracy did not improve for 2 rounds (best 0.7)");
  CHECK(stop(with_accuracy({0.5, 0.7, std::nullopt, std::nullopt})));  // missing values do not improve
  CHECK_FALSE(stop(with_accuracy({0.5, 0.7, 0.6, 0.71})));
}

TEST_CASE("when_no_improvement honours min_delta and lower-is-better") {
  const auto stop = flotilla::stop::when_no_improvement("accuracy", 1, flotilla::better::higher, 0.05);
  CHECK(stop(with_accuracy({0.5, 0.54})));        // +0.04 is not enough
  CHECK_FALSE(stop(with_accuracy({0.5, 0.56})));
  const auto loss = flotilla::stop::when_no_improvement("fit.loss", 1, flotilla::better::lower);
  CHECK_FALSE(loss(with_accuracy({0, 0, 0})));  // loss keeps falling
  CHECK_THROWS_AS((void)flotilla::stop::when_no_improvement("loss", 0, flotilla::better::lower),
                  flotilla::configuration_error);
}

TEST_CASE("criteria compose with || and the first that fires names the reason") {
  const auto stop = flotilla::stop::after_rounds(4) ||
                    flotilla::stop::when_metric_reaches("accuracy", 0.9, flotilla::better::higher);
  CHECK_FALSE(stop(with_accuracy({0.5})));
  CHECK(stop(with_accuracy({0.5, 0.95})) == "accuracy reached 0.95 (target 0.9)");
  CHECK(stop(with_accuracy({0.5, 0.6, 0.7, 0.8})) == "reached the round budget of 4");
  CHECK(stop(with_accuracy({0.5, 0.6, 0.7, 0.95})) == "reached the round budget of 4");  // left first
}

TEST_CASE("metric lookup prefers central, then federated, then fit metrics") {
  flotilla::round_record r;
  r.fit_metrics["loss"] = 3;
  CHECK(r.metric("loss") == 3.0);
  r.federated_metrics["loss"] = 2;
  CHECK(r.metric("loss") == 2.0);
  r.central_metrics["loss"] = 1;
  CHECK(r.metric("loss") == 1.0);
  CHECK(r.metric("fit.loss") == 3.0);
  CHECK(r.metric("federated.loss") == 2.0);
  CHECK_FALSE(r.metric("central.accuracy"));
}

// The MPI transport, run by CTest under mpirun with 4 ranks (2 to 5 work: every rank but 0 must
// have learners selected in every round for the counts of partial aggregates). Every test case
// runs on every rank, in the same order: rank 0 coordinates and checks, the others serve. Each
// compares the job's rounds with the same federation in one process (same seed, same selection):
// the records must match and the parameters agree within floating-point rounding.
#include <flotilla/transport/mpi/transport.hpp>

#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <flotilla/aggregators/robust.hpp>
#include <flotilla/aggregators/server_optimizer.hpp>
#include <flotilla/coordinators/synchronous.hpp>
#include <flotilla/models/linear_regression.hpp>
#include <flotilla/round/learner.hpp>
#include <flotilla/round/stopping.hpp>
#include <flotilla/transport/in_memory.hpp>
#include <flotilla/transport/mpi/environment.hpp>

#include "test_learner.hpp"

#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

using namespace mpi_test;

flotilla::mpi::environment* mpi = nullptr;  // set by main

struct outcome {
  params global;
  flotilla::history history;
  flotilla::mpi::traffic traffic{};
};

// The federation of `count` learners run for `rounds` rounds: in one process (on rank 0 only)
// or over every rank, each hosting mpi::share of the ids on demand.
template <class Rule>
outcome single_process(std::size_t count, const behaviour& odd, flotilla::coordinator_options options, Rule rule, int rounds) {
  flotilla::on_demand_transport<test_learner> local(count, [&](learner_id id) { return test_learner(id, odd); }, 2);
  flotilla::coordinator coordinator(local, model(2).parameters(), std::move(options), std::move(rule));
  coordinator.run(flotilla::stop::after_rounds(rounds));
  return {coordinator.global(), coordinator.history()};
}

template <class Rule, class Local>
std::optional<outcome> over_mpi(Local& local, flotilla::coordinator_options options, Rule rule, int rounds) {
  flotilla::mpi::transport transport(mpi->world(), local);
  if (!transport.coordinates()) {
    transport.serve(rule);
    return std::nullopt;
  }
  flotilla::coordinator coordinator(transport, model(2).parameters(), std::move(options), std::move(rule));
  coordinator.run(flotilla::stop::after_rounds(rounds));
  transport.finish();
  return outcome{coordinator.global(), coordinator.history(), transport.traffic()};
}

// Each rank's share made on demand, or living for the whole run.
template <class Rule>
std::optional<outcome> over_mpi(std::size_t count, const behaviour& odd, flotilla::coordinator_options options, Rule rule,
                                int rounds) {
  flotilla::on_demand_transport<test_learner> local(flotilla::mpi::share(count, mpi->rank(), mpi->size()),
                                                    [&](learner_id id) { return test_learner(id, odd); }, 2);
  return over_mpi(local, std::move(options), std::move(rule), rounds);
}

template <class Rule>
std::optional<outcome> over_mpi_in_memory(std::size_t count, flotilla::coordinator_options options, Rule rule, int rounds) {
  std::vector<test_learner> mine;
  for (auto id : flotilla::mpi::share(count, mpi->rank(), mpi->size())) mine.emplace_back(id, behaviour{});
  flotilla::in_memory_transport local(std::move(mine), 2);
  return over_mpi(local, std::move(options), std::move(rule), rounds);
}

std::uint64_t ranks() { return std::uint64_t(mpi->size()); }

void check_close(const params& actual, const params& expected, double tolerance) {
  REQUIRE(actual.values().size() == expected.values().size());
  for (std::size_t i = 0; i < actual.values().size(); ++i) {
    CAPTURE(i);
    CHECK(actual.values()[i] == doctest::Approx(expected.values()[i]).epsilon(tolerance));
  }
}

std::vector<std::string> reasons_of(const flotilla::round_record& record) {
  std::vector<std::string> out;
  for (const auto& entry : record.rejections) out.push_back(std::to_string(entry.learner) + ": " + entry.reason);
  std::ranges::sort(out);
  return out;
}

// The job's records equal the single process's, round by round.
void check_same_rounds(const outcome& job, const outcome& alone, double tolerance) {
  REQUIRE(job.history.rounds.size() == alone.history.rounds.size());
  for (std::size_t r = 0; r < job.history.rounds.size(); ++r) {
    const auto& a = job.history.rounds[r];
    const auto& b = alone.history.rounds[r];
    CAPTURE(r);
    CHECK(a.status == b.status);
    CHECK(a.selected == b.selected);
    CHECK(a.participants == b.participants);
    CHECK(a.examples == b.examples);
    CHECK(a.evaluated == b.evaluated);
    CHECK(reasons_of(a) == reasons_of(b));
    for (const auto& [name, value] : b.fit_metrics) CHECK(a.fit_metrics.at(name) == doctest::Approx(value).epsilon(tolerance));
    for (const auto& [name, value] : b.federated_metrics)
      CHECK(a.federated_metrics.at(name) == doctest::Approx(value).epsilon(tolerance));
  }
  check_close(job.global, alone.global, tolerance);
}

}  // namespace

TEST_CASE("FedAvg over the ranks equals the single-process run: selection, records, parameters") {
  const flotilla::coordinator_options options{.selection = {.fraction = 0.5}, .quorum = 3, .evaluation_fraction = 0.3, .seed = 7};
  auto job = over_mpi(37, {}, options, flotilla::weighted_mean<params>{}, 4);
  if (!job) return;
  const auto alone = single_process(37, {}, options, flotilla::weighted_mean<params>{}, 4);
  CHECK(job->history.rounds.front().selected.size() == 19);
  CHECK(job->history.rounds.front().federated_metrics.contains("loss"));
  check_same_rounds(*job, alone, 1e-12);
  // Fit replies came as one partial aggregate per rank and round; evaluations one by one.
  std::uint64_t evaluated_elsewhere = 0;
  for (const auto& round : job->history.rounds)
    for (auto id : round.evaluated) evaluated_elsewhere += id % ranks() != 0;
  CHECK(job->traffic.partial_aggregates == 4 * (ranks() - 1));
  CHECK(job->traffic.messages == evaluated_elsewhere);
}

TEST_CASE("learners that live on their ranks for the whole run (in_memory_transport) federate as in one process") {
  const flotilla::coordinator_options options{.selection = {.fraction = 0.7}, .seed = 13};
  auto job = over_mpi_in_memory(23, options, flotilla::mean<params>{}, 3);
  if (!job) return;
  check_same_rounds(*job, single_process(23, {}, options, flotilla::mean<params>{}, 3), 1e-12);
  CHECK(job->traffic.partial_aggregates == 3 * (ranks() - 1));
}

TEST_CASE("FedAdam over the ranks: each rank's partial mean feeds the same server step") {
  const flotilla::coordinator_options options{.selection = {.fraction = 0.4}, .seed = 11};
  const flotilla::adaptive_options adam{.learning_rate = 0.05};
  auto job = over_mpi(30, {}, options, flotilla::fedadam<params>(adam), 3);
  if (!job) return;
  check_same_rounds(*job, single_process(30, {}, options, flotilla::fedadam<params>(adam), 3), 1e-12);
}

TEST_CASE("a rule that gathers every update (the median) is sent each update from every rank") {
  const flotilla::coordinator_options options{.selection = {.fraction = 0.6}, .seed = 3};
  auto job = over_mpi(20, {}, options, flotilla::coordinate_median<params>{}, 3);
  if (!job) return;
  check_same_rounds(*job, single_process(20, {}, options, flotilla::coordinate_median<params>{}, 3), 1e-12);
  std::uint64_t selected_elsewhere = 0;
  for (const auto& round : job->history.rounds)
    for (auto id : round.selected) selected_elsewhere += id % ranks() != 0;
  CHECK(job->traffic.partial_aggregates == 0);
  CHECK(job->traffic.messages == selected_elsewhere);
}

TEST_CASE("failures and rejections on every rank reach rank 0's history with their reasons; the round goes on") {
  const behaviour odd{.throws = {5, 14}, .poisons = {6, 11}};  // on ranks 1, 2, 2, 3 of 4
  const flotilla::coordinator_options options{.selection = {.fraction = 1.0}, .seed = 5};
  auto job = over_mpi(16, odd, options, flotilla::weighted_mean<params>{}, 2);
  if (!job) return;
  const auto alone = single_process(16, odd, options, flotilla::weighted_mean<params>{}, 2);
  check_same_rounds(*job, alone, 1e-12);
  const auto& first = job->history.rounds.front();
  CHECK(first.participants.size() == 12);
  CHECK(reasons_of(first) == std::vector<std::string>{
                                 "11: update holds a non-finite value (nan) at parameter index 1",
                                 "14: learner threw: learner 14 broke",
                                 "5: learner threw: learner 5 broke",
                                 "6: update holds a non-finite value (nan) at parameter index 1",
                             });
}

TEST_CASE("a learner slower than the deadline on another rank: its rank still sends the replies it has") {
  const behaviour odd{.sleeps = {5}};
  const flotilla::coordinator_options options{.selection = {.fraction = 1.0}, .round_timeout = std::chrono::milliseconds(1500), .seed = 5};
  auto job = over_mpi(12, odd, options, flotilla::weighted_mean<params>{}, 1);
  if (!job) return;
  const auto& round = job->history.rounds.front();
  CHECK(round.status == flotilla::round_status::aggregated);
  CHECK(round.participants == std::vector<learner_id>{0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11});  // 1 and 9 share 5's rank
  CHECK(reasons_of(round) == std::vector<std::string>{"5: no reply within the phase deadline of 1.5 s"});
  const auto alone = single_process(12, odd, options, flotilla::weighted_mean<params>{}, 1);
  check_close(job->global, alone.global, 1e-12);
}

TEST_CASE("mpi::share deals the ids out in turn and refuses a rank outside the job") {
  CHECK(flotilla::mpi::share(10, 1, 4) == std::vector<learner_id>{1, 5, 9});
  CHECK(flotilla::mpi::share(3, 3, 4).empty());
  CHECK_THROWS_WITH_AS((void)flotilla::mpi::share(10, 4, 4), "rank 4 is not one of 4", flotilla::configuration_error);
}

int main(int argc, char** argv) {
  flotilla::mpi::environment environment(argc, argv);
  mpi = &environment;
  doctest::Context context(argc, argv);
  if (environment.rank() != 0) context.setOption("out", "/dev/null");  // one report, rank 0's
  return context.run();
}

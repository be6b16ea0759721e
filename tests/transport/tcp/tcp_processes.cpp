// An aggregator (this process) and four learner processes on 127.0.0.1; one learner is killed
// with SIGKILL in the middle of a round. The run completes its rounds with the other three.
#include <flotilla/transport/tcp/server_transport.hpp>

#include "tcp_support.hpp"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <cmath>
#include <string>
#include <vector>

using namespace tcp_test;

extern char** environ;

namespace {
pid_t spawn_learner(std::uint16_t port, flotilla::learner_id id, int delay_ms) {
  std::vector<std::string> arguments{FLOTILLA_LEARNER_PROCESS, std::to_string(port), std::to_string(id),
                                     std::to_string(delay_ms)};
  std::vector<char*> argv;
  for (auto& argument : arguments) argv.push_back(argument.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  REQUIRE(posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ) == 0);
  return pid;
}
}  // namespace

TEST_CASE("four learner processes, one killed mid-round: the run completes with a correct model") {
  captured_log log;
  server transport(quick_server(log));
  std::vector<pid_t> learners;
  for (flotilla::learner_id id = 1; id <= 4; ++id) learners.push_back(spawn_learner(transport.port(), id, 300));

  REQUIRE(flotilla::wait_for_learners(transport, 4, 20s));  // the first round starts with all four
  flotilla::coordinator federation(transport, model(2).parameters(), {.quorum = 3, .round_timeout = 10s});
  std::thread killer;
  federation.on_round([&](const flotilla::round_record& r) {
    if (r.round == 2)  // 150 ms into round 3, learner 4 is training: kill it there
      killer = std::thread([&] {
        std::this_thread::sleep_for(150ms);
        kill(learners[3], SIGKILL);
      });
  });
  const auto& history = federation.run(flotilla::stop::after_rounds(6));
  killer.join();

  REQUIRE(history.rounds.size() == 6);
  CHECK(history.rounds[0].participants == std::vector<flotilla::learner_id>{1, 2, 3, 4});
  const auto& killed_round = history.rounds[2];
  REQUIRE(killed_round.rejections.size() == 1);
  CHECK(killed_round.rejections[0].learner == 4);
  CHECK(killed_round.rejections[0].reason.starts_with("connection lost: "));
  for (std::size_t i = 2; i < 6; ++i) {
    CHECK(history.rounds[i].status == flotilla::round_status::aggregated);
    CHECK(history.rounds[i].participants == std::vector<flotilla::learner_id>{1, 2, 3});
  }
  const auto w = federation.global().values();
  CHECK(w[0] == doctest::Approx(2.0).epsilon(1e-3));
  CHECK(w[1] == doctest::Approx(-1.0).epsilon(1e-3));
  CHECK(w[2] == doctest::Approx(1.0).epsilon(1e-3));

  transport.say_goodbye();
  for (std::size_t i = 0; i < learners.size(); ++i) {
    int status = 0;
    REQUIRE(waitpid(learners[i], &status, 0) == learners[i]);
    if (i == 3) CHECK((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL));
    else CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
  }
}

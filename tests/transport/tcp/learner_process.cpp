// A learner process for the multi-process test: serves a linear model on its own slice of
// y = 2 x0 - x1 + 1 to the aggregator at 127.0.0.1:PORT until goodbye.
// Usage: tcp_learner_process PORT ID [FIT_DELAY_MS]
#define DOCTEST_CONFIG_DISABLE  // tcp_support.hpp's helpers are shared with the tests; no tests here
#include "tcp_support.hpp"

#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s PORT ID [FIT_DELAY_MS]\n", argv[0]);
    return 2;
  }
  const auto port = static_cast<std::uint16_t>(std::atoi(argv[1]));
  const auto id = static_cast<flotilla::learner_id>(std::atoll(argv[2]));
  const auto delay = std::chrono::milliseconds(argc > 3 ? std::atoi(argv[3]) : 0);
  tcp_test::test_learner learner(id, tcp_test::slow_model{.inner = tcp_test::model(2, {.learning_rate = 0.1, .epochs = 25, .batch_size = 0}),
                                                         .delay = delay},
                                 tcp_test::line_data(40, id));
  flotilla::tcp::client_options options{.port = port, .heartbeat_interval = std::chrono::milliseconds(100),
                                        .heartbeat_timeout = std::chrono::milliseconds(2000),
                                        .first_backoff = std::chrono::milliseconds(50)};
  flotilla::tcp::learner_client client(learner, options);
  return client.run() == flotilla::tcp::client_exit::goodbye ? 0 : 1;
}

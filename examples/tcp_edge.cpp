// An edge aggregator over TCP (hierarchical FL): serves its own learners (tcp_learner processes
// dial it) and is one learner towards its parent (a tcp_aggregator, or another tcp_edge). Each
// fit task from the parent runs --rounds-per-fit rounds over its learners (1: the round passes
// through, so FedAvg at the root equals FedAvg over every learner); it reconnects if the parent
// restarts, and ends when the parent ends the run, saying goodbye to its learners.
//   tcp_edge --id 0 [--port 7701] [--parent-host 127.0.0.1] [--parent-port 7700] [--learners 5]
//            [--quorum 0 (= learners - 1)] [--rounds-per-fit 1] [--token-file FILE (towards the parent)]
//            [--tls-cert edge.pem --tls-key edge.key [--tls-ca ca.pem (requires learner certificates)]]
//            [--parent-tls-ca ca.pem [--parent-tls-cert e.pem --parent-tls-key e.key] [--parent-name localhost]]
//            [--history-csv history.csv]
// The token towards the parent comes from --token-file or FLOTILLA_TOKEN; its own learners
// prove theirs against FLOTILLA_TOKENS ("1=secret,2=other"), as with tcp_aggregator.
#include <flotilla/coordinators/edge.hpp>
#include <flotilla/transport/tcp/learner_client.hpp>
#include <flotilla/transport/tcp/server_transport.hpp>
#include <flotilla/transport/tcp/tls.hpp>

#include "fashion_mnist_common.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>

int main(int argc, char** argv) {
  auto flags = example::parse_flags(argc, argv,
                                    {{"id", "0"}, {"port", "7701"}, {"parent-host", "127.0.0.1"}, {"parent-port", "7700"},
                                     {"learners", "5"}, {"quorum", "0"}, {"rounds-per-fit", "1"}, {"token-file", ""},
                                     {"history-csv", ""}, {"tls-cert", ""}, {"tls-key", ""}, {"tls-ca", ""},
                                     {"parent-tls-ca", ""}, {"parent-tls-cert", ""}, {"parent-tls-key", ""},
                                     {"parent-name", ""}});
  example::require_flags(flags["tls-cert"].empty() == flags["tls-key"].empty(), "--tls-cert and --tls-key go together");
  example::require_flags(flags["tls-ca"].empty() || !flags["tls-cert"].empty(),
                         "--tls-ca (learner certificates) needs --tls-cert and --tls-key: the edge's own");
  example::require_flags(flags["parent-tls-cert"].empty() == flags["parent-tls-key"].empty(),
                         "--parent-tls-cert and --parent-tls-key go together");
  example::require_flags(flags["parent-tls-cert"].empty() || !flags["parent-tls-ca"].empty(),
                         "--parent-tls-cert needs --parent-tls-ca: without it the connection would not be TLS at all");
  const flotilla::learner_id id = std::stoull(flags["id"]);
  const std::size_t learners = std::stoul(flags["learners"]);
  const std::size_t quorum = std::stoul(flags["quorum"]) ? std::stoul(flags["quorum"]) : std::max<std::size_t>(1, learners - 1);

  flotilla::tcp::server_options below{.port = static_cast<std::uint16_t>(std::stoul(flags["port"]))};
  if (const char* tokens = std::getenv("FLOTILLA_TOKENS")) below.tokens = example::parse_tokens(tokens);
  if (!flags["tls-cert"].empty())
    below.tls = flotilla::tcp::make_server_tls({flags["tls-cert"], flags["tls-key"], flags["tls-ca"]}, !flags["tls-ca"].empty());
  std::optional<flotilla::tcp::server_transport<example::model::parameters_type>> listening;
  try {
    listening.emplace(below);
  } catch (const flotilla::configuration_error& error) {
    std::fprintf(stderr, "error: %s\n", error.what());
    return 2;
  }
  std::printf("edge %llu listening on 127.0.0.1:%u%s for %zu learners\n", static_cast<unsigned long long>(id),
              listening->port(), below.tls ? " (TLS)" : "", learners);
  std::fflush(stdout);

  flotilla::edge_aggregator edge(id, *listening, example::make_model().parameters(),
                                 {.rounds_per_fit = std::stoul(flags["rounds-per-fit"]),
                                  .coordinator = {.quorum = quorum,
                                                  .round_timeout = std::chrono::seconds(60),
                                                  .wait_for_learners = std::chrono::seconds(60),
                                                  .seed = 42 + id}});
  edge.inner().on_round([id](const flotilla::round_record& r) {
    std::printf("edge %llu ", static_cast<unsigned long long>(id));
    example::print_round(r);
  });
  flotilla::tcp::client_options above{.host = flags["parent-host"],
                                     .port = static_cast<std::uint16_t>(std::stoul(flags["parent-port"])),
                                     .token = example::read_secret(flags["token-file"], "FLOTILLA_TOKEN"),
                                     .tls_server_name = flags["parent-name"]};
  if (!flags["parent-tls-ca"].empty())
    above.tls = flotilla::tcp::make_learner_tls({flags["parent-tls-cert"], flags["parent-tls-key"], flags["parent-tls-ca"]});
  flotilla::tcp::learner_client client(edge, above);
  const auto exit = client.run();
  listening->say_goodbye();
  if (!flags["history-csv"].empty()) std::ofstream(flags["history-csv"]) << flotilla::to_csv(edge.history());
  if (exit == flotilla::tcp::client_exit::goodbye) return 0;
  std::cerr << "edge " << id << ": run ended: " << flotilla::tcp::to_string(exit) << "\n";
  return exit == flotilla::tcp::client_exit::stopped ? 1 : 3;
}

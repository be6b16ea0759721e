// A learner of a federation over TCP: holds its own share of Fashion-MNIST, dials the aggregator,
// trains when asked, reconnects if the aggregator restarts, and exits when the run is over.
//   tcp_learner --id 0 [--learners 10] [--host 127.0.0.1] [--port 7700] [--token-file FILE] [--data DIR]
//               [--tls-ca ca.pem [--tls-cert learner.pem --tls-key learner.key] [--server-name localhost]]
//               [--secure yes (takes part in secure aggregation: sends its update masked)]
// It codes its replies as the aggregator asks (tcp_aggregator --to-aggregator), keeping what
// top_k leaves out for its next reply. The token comes from --token-file (its first line) or the FLOTILLA_TOKEN environment variable,
// never the command line.
#include <flotilla/algorithms/secure_aggregation/secure_learner.hpp>
#include <flotilla/round/compressing_learner.hpp>
#include <flotilla/transport/tcp/learner_client.hpp>
#include <flotilla/transport/tcp/tls.hpp>

#include "fashion_mnist_common.hpp"

#include <iostream>

int main(int argc, char** argv) {
  auto flags = example::parse_flags(argc, argv,
                                    {{"id", "0"}, {"learners", "10"}, {"host", "127.0.0.1"}, {"port", "7700"},
                                     {"token-file", ""}, {"data", ""}, {"tls-ca", ""}, {"tls-cert", ""}, {"tls-key", ""},
                                     {"server-name", ""}, {"secure", "no"}});
  example::require_flags(flags["tls-cert"].empty() == flags["tls-key"].empty(),
                         "--tls-cert and --tls-key go together");
  example::require_flags(flags["tls-cert"].empty() || !flags["tls-ca"].empty(),
                         "--tls-cert needs --tls-ca: without it the connection would not be TLS at all");
  const flotilla::learner_id id = std::stoull(flags["id"]);
  const auto share = example::learner_share(example::load_or_exit(flotilla::fashion_mnist_split::train, flags["data"]),
                                            id, std::stoul(flags["learners"]));
  flotilla::learner<example::model, example::data> learner(id, example::make_model(), share);

  flotilla::tcp::client_options options{.host = flags["host"],
                                        .port = static_cast<std::uint16_t>(std::stoul(flags["port"])),
                                        .token = example::read_secret(flags["token-file"], "FLOTILLA_TOKEN"),
                                        .tls_server_name = flags["server-name"]};
  if (!flags["tls-ca"].empty())
    options.tls = flotilla::tcp::make_learner_tls({flags["tls-cert"], flags["tls-key"], flags["tls-ca"]});
  // 0 when the aggregator ended the run; otherwise the cause, e.g. "certificate_rejected".
  const auto serve = [&](auto any_learner) {
    flotilla::compressing_learner coding(std::move(any_learner));  // passes tasks that name no codec through
    return flotilla::tcp::learner_client(coding, options).run();
  };
  const auto exit = flags["secure"] == "yes" ? serve(flotilla::secure_aggregation::secure_learner(std::move(learner)))
                                             : serve(std::move(learner));
  if (exit == flotilla::tcp::client_exit::goodbye) return 0;
  std::cerr << "learner " << id << ": run ended: " << flotilla::tcp::to_string(exit) << "\n";
  return exit == flotilla::tcp::client_exit::stopped ? 1 : 3;
}

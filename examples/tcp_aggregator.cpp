// The aggregator of a federation over TCP: waits for learners (tcp_learner processes, here or on
// other machines), runs FedAvg rounds on the Fashion-MNIST MLP and evaluates on the test set.
//   tcp_aggregator [--address 127.0.0.1] [--port 7700] [--learners 10] [--quorum 0 (= learners - 1)]
//                  [--rounds 30] [--seconds 170] [--tokens-file FILE] [--data DIR]
//                  [--tls-cert server.pem --tls-key server.key [--tls-ca ca.pem (requires learner certificates)]]
//                  [--history history.json] [--history-csv history.csv] [--insecure-open-network yes]
//                  [--secure yes (SecAgg+: learners need --secure yes too)]
//                  [--to-learners CODEC] [--to-aggregator CODEC] (float16, bfloat16, int8[:block],
//                  int4[:block]; top_k[:fraction] for replies only: see compression/codec.hpp)
// Tokens ("1=secret,2=other", or one "id=token" a line) come from --tokens-file or the
// FLOTILLA_TOKENS environment variable, never the command line. Listening beyond loopback needs
// tokens or learner certificates, unless --insecure-open-network yes. With --secure yes the
// aggregator sees only the sum of each round's updates (secure aggregation, SecAgg+).
#include <flotilla/algorithms/secure_aggregation/aggregator.hpp>
#include <flotilla/transport/tcp/server_transport.hpp>
#include <flotilla/transport/tcp/tls.hpp>

#include "fashion_mnist_common.hpp"

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <string>

namespace {
std::string read_all(const std::string& file) {
  std::ifstream in(file);
  example::require_flags(bool(in), "cannot read the tokens file");
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
}  // namespace

int main(int argc, char** argv) {
  auto flags = example::parse_flags(argc, argv,
                                    {{"address", "127.0.0.1"}, {"port", "7700"}, {"learners", "10"}, {"quorum", "0"},
                                     {"rounds", "30"}, {"seconds", "170"}, {"tokens-file", ""}, {"data", ""},
                                     {"tls-cert", ""}, {"tls-key", ""}, {"tls-ca", ""}, {"history", ""}, {"history-csv", ""},
                                     {"insecure-open-network", "no"}, {"secure", "no"}, {"to-learners", "none"},
                                     {"to-aggregator", "none"}});
  example::require_flags(flags["tls-cert"].empty() == flags["tls-key"].empty(),
                         "--tls-cert and --tls-key go together");
  example::require_flags(flags["tls-ca"].empty() || !flags["tls-cert"].empty(),
                         "--tls-ca (learner certificates) needs --tls-cert and --tls-key: the aggregator's own");
  const std::size_t learners = std::stoul(flags["learners"]);
  const std::size_t quorum = std::stoul(flags["quorum"]) ? std::stoul(flags["quorum"]) : std::max<std::size_t>(1, learners - 1);
  const auto test = example::load_or_exit(flotilla::fashion_mnist_split::test, flags["data"]);
  const auto codecs = example::parse_codecs(flags["to-learners"], flags["to-aggregator"]);

  flotilla::tcp::server_options options{.address = flags["address"],
                                        .port = static_cast<std::uint16_t>(std::stoul(flags["port"])),
                                        .insecure_allow_unauthenticated_network = flags["insecure-open-network"] == "yes"};
  const char* from_environment = std::getenv("FLOTILLA_TOKENS");
  options.tokens = example::parse_tokens(!flags["tokens-file"].empty() ? read_all(flags["tokens-file"])
                                : from_environment           ? from_environment
                                                             : "");
  if (!flags["tls-cert"].empty())
    options.tls = flotilla::tcp::make_server_tls({flags["tls-cert"], flags["tls-key"], flags["tls-ca"]},
                                                 !flags["tls-ca"].empty());
  std::optional<flotilla::tcp::server_transport<example::model::parameters_type>> listening;
  try {
    listening.emplace(options);
  } catch (const flotilla::configuration_error& error) {
    std::fprintf(stderr, "error: %s\n", error.what());
    return 2;
  }
  auto& transport = *listening;
  std::printf("aggregator listening on %s:%u%s, waiting for %zu learners\n", flags["address"].c_str(), transport.port(),
              options.tls ? " (TLS)" : "", learners);
  std::fflush(stdout);

  if (!flotilla::wait_for_learners(transport, learners, std::chrono::seconds(60)))
    std::printf("only %zu of %zu learners registered within 60 s; starting anyway\n", transport.connected().size(),
                learners);
  const auto initial = example::make_model();
  // Every registered learner is asked each round; a round needs `quorum` replies within 60 s (per
  // stage, with secure aggregation), and waits up to 60 s for that many learners to be connected
  // (e.g. after an aggregator restart).
  const auto run = [&](auto rule) {
    flotilla::coordinator federation(transport, initial.parameters(),
                                     {.quorum = quorum,
                                      .round_timeout = std::chrono::seconds(60),
                                      .wait_for_learners = std::chrono::seconds(60),
                                      .seed = 42,
                                      .compression = codecs},
                                     std::move(rule));
    auto evaluator = initial;
    federation.evaluate_centrally([&](const example::model::parameters_type& global) {
      evaluator.set_parameters(global);
      return evaluator.evaluate(test).metrics;
    });
    federation.on_round(example::print_round);
    return federation.run(flotilla::stop::after_rounds(std::stoul(flags["rounds"])) ||
                          flotilla::stop::after_time(std::chrono::duration<double>(std::stod(flags["seconds"]))));
  };
  using parameters = example::model::parameters_type;
  // Secure rounds weigh updates by examples capped at 10,000 (each learner holds 6,000 here).
  const auto history = flags["secure"] == "yes"
                           ? run(flotilla::secure_aggregation::secure_mean<parameters>({.max_weight = 10'000}))
                           : run(flotilla::weighted_mean<parameters>());
  transport.say_goodbye();
  example::print_final(history);
  if (!flags["history"].empty()) std::ofstream(flags["history"]) << flotilla::to_json(history);
  if (!flags["history-csv"].empty()) std::ofstream(flags["history-csv"]) << flotilla::to_csv(history);
}

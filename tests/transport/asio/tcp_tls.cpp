#include <flotilla/transport/asio/tls.hpp>

#include "tcp_support.hpp"

#include <string>

using namespace tcp_test;

namespace {
const std::string certificates = FLOTILLA_TEST_CERTIFICATES;  // made by make_certificates.sh (CTest fixture)
std::string file(const char* name) { return certificates + "/" + name; }

flotilla::tcp::server_options mutual_tls_server(captured_log& log) {
  auto options = quick_server(log);
  options.tls = flotilla::tcp::make_server_tls({file("server.pem"), file("server.key"), file("ca.pem")}, true);
  return options;
}
flotilla::tcp::client_options tls_client(std::uint16_t port, captured_log& log, flotilla::tcp::tls_files files) {
  auto options = quick_client(port, log);
  options.tls = flotilla::tcp::make_learner_tls(files);
  options.tls_server_name = "localhost";
  return options;
}
}  // namespace

TEST_CASE("a federation runs over mutual TLS") {
  captured_log log;
  server transport(mutual_tls_server(log));
  client_thread learner(1, tls_client(transport.port(), log, {file("learner.pem"), file("learner.key"), file("ca.pem")}));
  REQUIRE(transport.wait_for_learners(1, 5s));
  flotilla::coordinator federation(transport, model(2).parameters(), {.quorum = 1, .round_timeout = 5s});
  CHECK(federation.run(flotilla::stop::after_rounds(2)).rounds.back().participants ==
        std::vector<flotilla::learner_id>{1});
  transport.say_goodbye();
  CHECK(learner.wait() == flotilla::tcp::client_exit::goodbye);
}

TEST_CASE("a learner without a certificate from the operator's CA never registers") {
  captured_log log;
  server transport(mutual_tls_server(log));
  SUBCASE("no client certificate") {
    client_thread anonymous(1, tls_client(transport.port(), log, {"", "", file("ca.pem")}));
    CHECK(log.wait_for("closed before registering: handshake failed"));
    CHECK(log.wait_for("learner 1: connection failed"));
  }
  SUBCASE("a certificate signed by another CA") {
    client_thread rogue(1, tls_client(transport.port(), log, {file("rogue.pem"), file("rogue.key"), file("ca.pem")}));
    CHECK(log.wait_for("closed before registering: handshake failed"));
  }
  CHECK(transport.connected().empty());
}

TEST_CASE("a learner refuses an aggregator its CA did not sign") {
  captured_log log;
  server transport(mutual_tls_server(log));
  client_thread careful(1, tls_client(transport.port(), log, {file("learner.pem"), file("learner.key"), file("rogue-ca.pem")}));
  CHECK(log.wait_for("learner 1: connection failed: certificate verify failed"));
  CHECK(transport.connected().empty());
}

TEST_CASE("over TLS, a wrong token is still refused") {
  captured_log log;
  auto options = mutual_tls_server(log);
  options.tokens = {{1, "right"}};
  server transport(options);
  auto client = tls_client(transport.port(), log, {file("learner.pem"), file("learner.key"), file("ca.pem")});
  client.token = "wrong";
  client_thread learner(1, client);
  CHECK(learner.wait() == flotilla::tcp::client_exit::refused);
  CHECK(log.wait_for("learner 1: refused by the aggregator: authentication failed"));
}

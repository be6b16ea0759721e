#include <flotilla/transport/tcp/tls.hpp>

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
  REQUIRE(flotilla::wait_for_learners(transport, 1, 5s));
  flotilla::coordinator federation(transport, model(2).parameters(), {.quorum = 1, .round_timeout = 5s});
  CHECK(federation.run(flotilla::stop::after_rounds(2)).rounds.back().participants ==
        std::vector<flotilla::learner_id>{1});
  transport.say_goodbye();
  CHECK(learner.wait() == flotilla::tcp::client_exit::goodbye);
}

TEST_CASE("a learner that cannot get in gives up after its attempts, naming the cause") {
  captured_log log;
  server transport(mutual_tls_server(log));
  SUBCASE("no client certificate") {
    client_thread anonymous(1, tls_client(transport.port(), log, {"", "", file("ca.pem")}));
    CHECK(anonymous.wait() == flotilla::tcp::client_exit::certificate_rejected);
    CHECK(log.wait_for("closed before registering: handshake failed"));
    CHECK(log.wait_for("learner 1: cannot get in (attempt 3 of 3): the aggregator requires a client certificate "
                       "and this learner sent none"));
    CHECK(log.wait_for("learner 1: giving up: the aggregator requires a client certificate"));
  }
  SUBCASE("a certificate signed by another CA") {
    client_thread rogue(1, tls_client(transport.port(), log, {file("rogue.pem"), file("rogue.key"), file("ca.pem")}));
    CHECK(rogue.wait() == flotilla::tcp::client_exit::certificate_rejected);
    CHECK(log.wait_for("closed before registering: handshake failed"));
    CHECK(log.wait_for("learner 1: giving up: the aggregator rejected this learner's certificate (tlsv1 alert unknown ca"));
  }
  SUBCASE("an aggregator its CA did not sign") {
    client_thread careful(1, tls_client(transport.port(), log, {file("learner.pem"), file("learner.key"), file("rogue-ca.pem")}));
    CHECK(careful.wait() == flotilla::tcp::client_exit::certificate_unverified);
    CHECK(log.wait_for("learner 1: giving up: could not verify the aggregator's certificate: self-signed "
                       "certificate in certificate chain"));
  }
  SUBCASE("plain TCP to an aggregator that requires TLS") {
    client_thread plain(1, quick_client(transport.port(), log));
    CHECK(plain.wait() == flotilla::tcp::client_exit::tls_mismatch);
    CHECK(log.wait_for("speaks plain TCP; this aggregator requires TLS"));
    CHECK(log.wait_for("learner 1: giving up: the aggregator requires TLS and this learner speaks plain TCP"));
  }
  SUBCASE("the number of attempts is the learner's to choose; 0 retries for good") {
    auto patient = quick_client(transport.port(), log);
    patient.give_up_after = 0;
    patient.max_backoff = 50ms;
    client_thread plain(1, patient);
    CHECK(log.wait_for("learner 1: cannot get in (attempt 5): the aggregator requires TLS"));
    CHECK_FALSE(log.wait_for("giving up", 100ms));
  }
  CHECK(transport.connected().empty());
}

TEST_CASE("a TLS learner tells a plain TCP aggregator apart, and the aggregator says so too") {
  captured_log log;
  server plain(quick_server(log));
  auto options = tls_client(plain.port(), log, {file("learner.pem"), file("learner.key"), file("ca.pem")});
  options.give_up_after = 2;
  client_thread learner(1, options);
  CHECK(learner.wait() == flotilla::tcp::client_exit::tls_mismatch);
  CHECK(log.wait_for("speaks TLS; this aggregator runs plain TCP (server_options::tls is not set)"));
  CHECK(log.wait_for("learner 1: giving up: the aggregator does not speak TLS: it answered in plain TCP"));
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

TEST_CASE("mutual TLS binds each learner id to its certificate's name") {
  captured_log log;
  auto options = mutual_tls_server(log);
  options.certificate_names = {{1, "learner-1"}, {2, "learner-2"}};
  server transport(options);
  const flotilla::tcp::tls_files learner_one{file("learner.pem"), file("learner.key"), file("ca.pem")};  // CN=learner-1
  SUBCASE("learner 1's certificate cannot register as learner 2") {
    client_thread impostor(2, tls_client(transport.port(), log, learner_one));
    CHECK(impostor.wait() == flotilla::tcp::client_exit::refused);
    CHECK(log.wait_for("refused learner 2 from 127.0.0.1:"));
    CHECK(log.wait_for("its certificate is not the one bound to this id (expected the name learner-2)"));
    CHECK(log.wait_for("learner 2: refused by the aggregator: authentication failed"));
    CHECK(transport.connected().empty());
  }
  SUBCASE("an id with no name configured is refused") {
    client_thread unlisted(3, tls_client(transport.port(), log, learner_one));
    CHECK(unlisted.wait() == flotilla::tcp::client_exit::refused);
    CHECK(log.wait_for("no certificate name is configured for this learner id"));
  }
  SUBCASE("learner 1 with its own certificate registers") {
    client_thread owner(1, tls_client(transport.port(), log, learner_one));
    CHECK(flotilla::wait_for_learners(transport, 1, 5s));
  }
}

TEST_CASE("certificate names without mutual TLS are a configuration error") {
  captured_log log;
  auto options = quick_server(log);
  options.certificate_names = {{1, "learner-1"}};
  CHECK_THROWS_WITH_AS(server{options}, "certificate_names need mutual TLS: make_server_tls(files, true)",
                       flotilla::configuration_error);
}

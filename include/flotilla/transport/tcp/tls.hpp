#pragma once
// TLS set-up for the TCP transport through asio::ssl (OpenSSL): server and learner contexts,
// optionally mutual (each side presents a certificate signed by a CA the operator supplies).

#include "flotilla/transport/tcp/detail/asio_config.hpp"  // first: coroutine support under Clang

#include <asio/ssl/context.hpp>

#include <memory>
#include <string>

namespace flotilla::tcp {

struct tls_files {
  std::string certificate{};  ///< PEM certificate chain presented to the peer (may be empty on a learner)
  std::string private_key{};  ///< PEM private key of that certificate
  std::string authority{};    ///< PEM CA certificate(s) that must have signed the peer's certificate
};

/// The aggregator's context. With `require_client_certificate`, a learner without a certificate
/// signed by `files.authority` fails the handshake and is refused (mutual TLS).
[[nodiscard]] inline std::shared_ptr<asio::ssl::context> make_server_tls(const tls_files& files,
                                                                         bool require_client_certificate) {
  auto context = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  context->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                       asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
  context->use_certificate_chain_file(files.certificate);
  context->use_private_key_file(files.private_key, asio::ssl::context::pem);
  if (require_client_certificate) {
    context->load_verify_file(files.authority);
    context->set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
  }
  return context;
}

/// A learner's context: it always verifies the aggregator against `files.authority`, and presents
/// its own certificate when one is given (for mutual TLS).
[[nodiscard]] inline std::shared_ptr<asio::ssl::context> make_learner_tls(const tls_files& files) {
  auto context = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  context->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                       asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
  context->load_verify_file(files.authority);
  context->set_verify_mode(asio::ssl::verify_peer);
  if (!files.certificate.empty()) {
    context->use_certificate_chain_file(files.certificate);
    context->use_private_key_file(files.private_key, asio::ssl::context::pem);
  }
  return context;
}

}  // namespace flotilla::tcp

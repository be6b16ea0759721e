#pragma once
// Challenge-response for the TCP hello, on OpenSSL's vetted primitives: the aggregator sends a
// fresh random nonce on every connection, and a learner proves it holds its token by answering
// HMAC-SHA256(token, context || nonce || learner id) instead of sending the token itself. A
// captured hello is worthless on another connection, and the token never crosses the wire.

#include <openssl/crypto.h>  // CRYPTO_memcmp: comparison in constant time; OPENSSL_init_crypto
#include <openssl/evp.h>     // EVP_sha256
#include <openssl/hmac.h>    // HMAC
#include <openssl/rand.h>    // RAND_bytes: the nonce

#include <array>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "flotilla/messages.hpp"  // learner_id

namespace flotilla::tcp {

/// A challenge nonce and a hello's proof are each 32 bytes.
inline constexpr std::size_t challenge_size = 32;
using challenge_nonce = std::array<std::byte, challenge_size>;
using hello_proof = std::array<std::byte, challenge_size>;

/// Initializes OpenSSL now, on the calling thread. A transport calls it before starting its own
/// thread: OpenSSL registers its exit-time cleanup at first use, and a cleanup registered later
/// than a static transport would run before that transport's destructor stops its thread.
/// (Options of 0 would not do: OpenSSL returns at once for options already done, and no options
/// always count as done. Loading the configuration is what its first use would do anyway.)
inline void initialize_openssl() {
  if (OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, nullptr) != 1)
    throw security_error("OpenSSL could not be initialized");
}

/// A nonce from OpenSSL's generator. @throws std::runtime_error if it cannot produce one.
[[nodiscard]] inline challenge_nonce make_challenge() {
  challenge_nonce nonce{};
  if (RAND_bytes(reinterpret_cast<unsigned char*>(nonce.data()), int(nonce.size())) != 1)
    throw security_error("OpenSSL's RAND_bytes could not produce a challenge nonce");
  return nonce;
}

/// HMAC-SHA256 keyed by `token` over a fixed context string, the nonce and the learner id (8
/// bytes, little-endian), so a proof is bound to one connection and one identity.
[[nodiscard]] inline hello_proof prove(std::string_view token, const challenge_nonce& nonce, learner_id learner) {
  constexpr std::string_view context = "flotilla tcp hello v2";
  std::array<unsigned char, context.size() + challenge_size + 8> message{};
  std::size_t at = 0;
  for (const char c : context) message[at++] = static_cast<unsigned char>(c);
  for (const auto b : nonce) message[at++] = static_cast<unsigned char>(b);
  for (int i = 0; i < 8; ++i) message[at++] = static_cast<unsigned char>(learner >> (8 * i));
  hello_proof proof{};
  unsigned int length = 0;
  if (HMAC(EVP_sha256(), token.data(), int(token.size()), message.data(), message.size(),
           reinterpret_cast<unsigned char*>(proof.data()), &length) == nullptr ||
      length != proof.size())
    throw security_error("OpenSSL's HMAC-SHA256 failed");
  return proof;
}

/// Whether `proof` answers `nonce` for `learner` with `token`, compared in constant time.
[[nodiscard]] inline bool proof_matches(const hello_proof& proof, std::string_view token, const challenge_nonce& nonce,
                                        learner_id learner) {
  const auto expected = prove(token, nonce, learner);
  return CRYPTO_memcmp(proof.data(), expected.data(), proof.size()) == 0;
}

}  // namespace flotilla::tcp

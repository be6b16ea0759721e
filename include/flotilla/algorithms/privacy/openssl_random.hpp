#pragma once
// A faster NoiseSource for users who link flotilla::crypto (OpenSSL's libcrypto): OpenSSL's
// private CTR-DRBG (NIST SP 800-90A, AES-256), seeded and reseeded from the operating system.
// It runs several times faster than getrandom(2) (benchmarks/privacy.cpp compares them), which
// matters when noise is drawn for models of millions of parameters every round.

#include <openssl/err.h>
#include <openssl/rand.h>

#include <cstdint>
#include <span>
#include <string>

#include "flotilla/errors.hpp"

namespace flotilla::privacy {

/// OpenSSL's RAND_priv_bytes: thread-safe (a generator per thread) and stateless here.
class openssl_random {
 public:
  /// @throws security_error with OpenSSL's reason if its generator cannot be seeded.
  void fill(std::span<std::uint64_t> words) const {
    constexpr std::size_t largest_request = std::size_t{1} << 30;  // RAND_priv_bytes takes an int
    auto* bytes = reinterpret_cast<unsigned char*>(words.data());
    for (std::size_t done = 0; done < words.size_bytes();) {
      const auto size = std::min(largest_request, words.size_bytes() - done);
      if (RAND_priv_bytes(bytes + done, static_cast<int>(size)) != 1) {
        char reason[256] = "unknown reason";
        ERR_error_string_n(ERR_get_error(), reason, sizeof reason);
        throw security_error(std::string("OpenSSL's random generator failed: ") + reason);
      }
      done += size;
    }
  }
  [[nodiscard]] openssl_random fork(std::uint64_t) const { return {}; }
};

}  // namespace flotilla::privacy

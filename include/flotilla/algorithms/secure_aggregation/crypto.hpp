#pragma once
// The cryptographic primitives of secure aggregation, all OpenSSL's (link flotilla::crypto):
// X25519 key agreement, HKDF-SHA256, ChaCha20-Poly1305 to encrypt shares, and AES-256 in counter
// mode to expand a 32-byte seed into a mask. Nothing here is written by hand but the calls;
// tests check each against its RFC's or NIST's published vectors.

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "flotilla/errors.hpp"

namespace flotilla::secure_aggregation {

/// A 32-byte key, secret or public, or a seed.
using key_bytes = std::array<std::uint8_t, 32>;
/// A ChaCha20-Poly1305 nonce.
using nonce_bytes = std::array<std::uint8_t, 12>;

/// An X25519 key pair.
struct key_pair {
  key_bytes secret{};
  key_bytes public_key{};
};

namespace detail {
[[noreturn]] inline void openssl_failed(const char* what) {
  char reason[256] = "unknown reason";
  ERR_error_string_n(ERR_get_error(), reason, sizeof reason);
  throw security_error(std::string(what) + " failed in OpenSSL: " + reason);
}
inline void require(int status, const char* what) {
  if (status != 1) openssl_failed(what);
}

struct pkey_free {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct pkey_context_free {
  void operator()(EVP_PKEY_CTX* context) const { EVP_PKEY_CTX_free(context); }
};
struct cipher_context_free {
  void operator()(EVP_CIPHER_CTX* context) const { EVP_CIPHER_CTX_free(context); }
};
using pkey = std::unique_ptr<EVP_PKEY, pkey_free>;
using pkey_context = std::unique_ptr<EVP_PKEY_CTX, pkey_context_free>;
using cipher_context = std::unique_ptr<EVP_CIPHER_CTX, cipher_context_free>;

// Uniform in [0, bound), bound > 0, from OpenSSL's generator (rejection: no modulo bias).
inline std::uint64_t random_below(std::uint64_t bound) {
  const std::uint64_t floor = (0 - bound) % bound;  // 2^64 mod bound
  for (;;) {
    std::uint64_t word = 0;
    require(RAND_priv_bytes(reinterpret_cast<unsigned char*>(&word), sizeof word), "drawing a random number");
    if (word >= floor) return word % bound;
  }
}

inline cipher_context new_cipher_context() {
  cipher_context context(EVP_CIPHER_CTX_new());
  if (!context) openssl_failed("allocating a cipher context");
  return context;
}
}  // namespace detail

/// @brief An X25519 secret key held by OpenSSL: loaded once, so that agreeing with many peers
/// costs one scalar multiplication each (loading a raw key costs another).
class secret_key {
 public:
  /// A fresh key from OpenSSL's generator.
  static secret_key generate() {
    detail::pkey_context context(EVP_PKEY_CTX_new_id(EVP_PKEY_X25519, nullptr));
    if (!context) detail::openssl_failed("allocating X25519 key generation");
    detail::require(EVP_PKEY_keygen_init(context.get()), "starting X25519 key generation");
    EVP_PKEY* made = nullptr;
    detail::require(EVP_PKEY_keygen(context.get(), &made), "generating an X25519 key");
    return secret_key(detail::pkey(made));
  }
  /// The key whose raw bytes are `raw` (RFC 7748's little-endian scalar).
  explicit secret_key(const key_bytes& raw) : key_(EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, raw.data(), raw.size())) {
    if (!key_) detail::openssl_failed("loading an X25519 secret key");
  }

  [[nodiscard]] key_bytes raw() const { return read(EVP_PKEY_get_raw_private_key, "reading an X25519 secret key"); }
  [[nodiscard]] key_bytes public_key() const { return read(EVP_PKEY_get_raw_public_key, "reading an X25519 public key"); }

  /// @brief The X25519 shared secret with a peer's public key (RFC 7748).
  /// @throws security_error if the peer's key is of small order (the secret would be all zeros).
  [[nodiscard]] key_bytes agree(const key_bytes& peer_public) const {
    detail::pkey peer(EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nullptr, peer_public.data(), peer_public.size()));
    if (!peer) detail::openssl_failed("loading an X25519 public key");
    detail::pkey_context context(EVP_PKEY_CTX_new(key_.get(), nullptr));
    if (!context) detail::openssl_failed("allocating a key agreement");
    detail::require(EVP_PKEY_derive_init(context.get()), "starting a key agreement");
    detail::require(EVP_PKEY_derive_set_peer(context.get(), peer.get()), "setting the peer's key");
    key_bytes shared{};
    std::size_t size = shared.size();
    if (EVP_PKEY_derive(context.get(), shared.data(), &size) != 1 || size != shared.size()) {
      ERR_clear_error();
      throw security_error("X25519 agreement refused the peer's public key (a small-order point)");
    }
    return shared;
  }

 private:
  explicit secret_key(detail::pkey key) : key_(std::move(key)) {}
  template <class Read>
  key_bytes read(Read function, const char* what) const {
    key_bytes out{};
    std::size_t size = out.size();
    detail::require(function(key_.get(), out.data(), &size), what);
    return out;
  }
  detail::pkey key_;
};

/// The public key of an X25519 secret key.
[[nodiscard]] inline key_bytes public_key_of(const key_bytes& secret) { return secret_key(secret).public_key(); }

/// A fresh X25519 key pair from OpenSSL's generator, as raw bytes.
[[nodiscard]] inline key_pair make_key_pair() {
  const auto key = secret_key::generate();
  return {key.raw(), key.public_key()};
}

/// The X25519 shared secret of a raw secret key and a peer's public key (secret_key::agree).
[[nodiscard]] inline key_bytes agree(const key_bytes& secret, const key_bytes& peer_public) {
  return secret_key(secret).agree(peer_public);
}

/// HKDF with SHA-256 (RFC 5869): `length` bytes from input key material, salt and info.
[[nodiscard]] inline std::vector<std::uint8_t> hkdf_sha256(std::span<const std::uint8_t> key,
                                                           std::span<const std::uint8_t> salt,
                                                           std::span<const std::uint8_t> info, std::size_t length) {
  detail::pkey_context context(EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, nullptr));
  if (!context) detail::openssl_failed("allocating HKDF");
  detail::require(EVP_PKEY_derive_init(context.get()), "starting HKDF");
  detail::require(EVP_PKEY_CTX_set_hkdf_md(context.get(), EVP_sha256()), "choosing SHA-256 for HKDF");
  detail::require(EVP_PKEY_CTX_set1_hkdf_key(context.get(), key.data(), int(key.size())), "setting HKDF's key");
  if (!salt.empty())
    detail::require(EVP_PKEY_CTX_set1_hkdf_salt(context.get(), salt.data(), int(salt.size())), "setting HKDF's salt");
  if (!info.empty())
    detail::require(EVP_PKEY_CTX_add1_hkdf_info(context.get(), info.data(), int(info.size())), "setting HKDF's info");
  std::vector<std::uint8_t> out(length);
  std::size_t size = length;
  detail::require(EVP_PKEY_derive(context.get(), out.data(), &size), "deriving with HKDF");
  return out;
}

/// Size of the Poly1305 tag appended to every sealed message.
inline constexpr std::size_t tag_size = 16;

/// ChaCha20-Poly1305 (RFC 8439): the ciphertext of `plaintext` with its tag appended,
/// authenticating `associated` too.
[[nodiscard]] inline std::vector<std::uint8_t> seal(const key_bytes& key, const nonce_bytes& nonce,
                                                    std::span<const std::uint8_t> plaintext,
                                                    std::span<const std::uint8_t> associated = {}) {
  auto context = detail::new_cipher_context();
  detail::require(EVP_EncryptInit_ex(context.get(), EVP_chacha20_poly1305(), nullptr, key.data(), nonce.data()),
                  "starting ChaCha20-Poly1305");
  int length = 0;
  if (!associated.empty())
    detail::require(EVP_EncryptUpdate(context.get(), nullptr, &length, associated.data(), int(associated.size())),
                    "authenticating associated data");
  std::vector<std::uint8_t> out(plaintext.size() + tag_size);
  detail::require(EVP_EncryptUpdate(context.get(), out.data(), &length, plaintext.data(), int(plaintext.size())),
                  "encrypting");
  int tail = 0;
  detail::require(EVP_EncryptFinal_ex(context.get(), out.data() + length, &tail), "finishing encryption");
  detail::require(EVP_CIPHER_CTX_ctrl(context.get(), EVP_CTRL_AEAD_GET_TAG, int(tag_size), out.data() + plaintext.size()),
                  "reading the tag");
  return out;
}

/// The plaintext of a sealed message, or nothing when its tag does not verify (a forged or
/// damaged message, the wrong key, nonce or associated data).
[[nodiscard]] inline std::optional<std::vector<std::uint8_t>> open(const key_bytes& key, const nonce_bytes& nonce,
                                                                   std::span<const std::uint8_t> sealed,
                                                                   std::span<const std::uint8_t> associated = {}) {
  if (sealed.size() < tag_size) return std::nullopt;
  const std::size_t size = sealed.size() - tag_size;
  auto context = detail::new_cipher_context();
  detail::require(EVP_DecryptInit_ex(context.get(), EVP_chacha20_poly1305(), nullptr, key.data(), nonce.data()),
                  "starting ChaCha20-Poly1305");
  int length = 0;
  if (!associated.empty())
    detail::require(EVP_DecryptUpdate(context.get(), nullptr, &length, associated.data(), int(associated.size())),
                    "authenticating associated data");
  std::vector<std::uint8_t> out(size);
  detail::require(EVP_DecryptUpdate(context.get(), out.data(), &length, sealed.data(), int(size)), "decrypting");
  std::array<std::uint8_t, tag_size> tag{};
  std::memcpy(tag.data(), sealed.data() + size, tag_size);
  detail::require(EVP_CIPHER_CTX_ctrl(context.get(), EVP_CTRL_AEAD_SET_TAG, int(tag_size), tag.data()), "setting the tag");
  int tail = 0;
  if (EVP_DecryptFinal_ex(context.get(), out.data() + length, &tail) != 1) {
    ERR_clear_error();
    return std::nullopt;
  }
  return out;
}

namespace detail {
// The AES-256-CTR keystream under `key` from counter block `counter`, written over `out`.
inline void aes256_ctr_keystream(const key_bytes& key, const std::array<std::uint8_t, 16>& counter,
                                 std::span<std::uint8_t> out) {
  auto context = new_cipher_context();
  require(EVP_EncryptInit_ex(context.get(), EVP_aes_256_ctr(), nullptr, key.data(), counter.data()), "starting AES-256-CTR");
  std::memset(out.data(), 0, out.size());  // the keystream is the encryption of zeros
  constexpr std::size_t chunk = std::size_t{1} << 30;  // EVP takes an int length
  for (std::size_t done = 0; done < out.size();) {
    const std::size_t size = std::min(chunk, out.size() - done);
    int length = 0;
    require(EVP_EncryptUpdate(context.get(), out.data() + done, &length, out.data() + done, int(size)), "expanding a mask");
    done += size;
  }
}
}  // namespace detail

/// @brief Expands a 32-byte seed into `out.size()` pseudorandom words: the AES-256-CTR keystream
/// under the seed as key, from counter block zero. A seed must mask one vector only.
inline void expand_mask(const key_bytes& seed, std::span<std::uint32_t> out) {
  detail::aes256_ctr_keystream(seed, {}, std::span(reinterpret_cast<std::uint8_t*>(out.data()), out.size_bytes()));
}

}  // namespace flotilla::secure_aggregation

#include <flotilla/algorithms/secure_aggregation/crypto.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

// Each primitive against its published test vectors: RFC 7748 (X25519), RFC 5869 (HKDF), RFC
// 8439 (ChaCha20-Poly1305), NIST SP 800-38A (AES-256-CTR).

namespace secagg = flotilla::secure_aggregation;

namespace {
std::vector<std::uint8_t> hex(std::string_view text) {
  std::vector<std::uint8_t> out;
  for (std::size_t i = 0; i + 1 < text.size(); i += 2) out.push_back(std::uint8_t(std::stoi(std::string(text.substr(i, 2)), nullptr, 16)));
  return out;
}
template <std::size_t N>
std::array<std::uint8_t, N> fixed(std::string_view text) {
  std::array<std::uint8_t, N> out{};
  const auto bytes = hex(text);
  REQUIRE(bytes.size() == N);
  std::copy(bytes.begin(), bytes.end(), out.begin());
  return out;
}
}  // namespace

TEST_CASE("X25519: RFC 7748 section 6.1, both sides reach the same secret") {
  const auto alice = fixed<32>("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
  const auto bob = fixed<32>("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
  CHECK(secagg::public_key_of(alice) == fixed<32>("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"));
  CHECK(secagg::public_key_of(bob) == fixed<32>("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"));
  const auto shared = fixed<32>("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
  CHECK(secagg::agree(alice, secagg::public_key_of(bob)) == shared);
  CHECK(secagg::agree(bob, secagg::public_key_of(alice)) == shared);
  // Fresh pairs agree too, and differ from each other.
  const auto a = secagg::make_key_pair(), b = secagg::make_key_pair();
  CHECK(a.secret != b.secret);
  CHECK(secagg::agree(a.secret, b.public_key) == secagg::agree(b.secret, a.public_key));
  // A small-order point (the identity, all zeros) is refused.
  CHECK_THROWS_AS((void)secagg::agree(alice, secagg::key_bytes{}), flotilla::security_error);
}

TEST_CASE("HKDF-SHA256: RFC 5869 test case 1") {
  const auto okm = secagg::hkdf_sha256(hex("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"), hex("000102030405060708090a0b0c"),
                                       hex("f0f1f2f3f4f5f6f7f8f9"), 42);
  CHECK(okm == hex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"));
}

TEST_CASE("ChaCha20-Poly1305: RFC 8439 section 2.8.2; a changed byte, nonce or associated data fails") {
  const auto key = fixed<32>("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
  const auto nonce = fixed<12>("070000004041424344454647");
  const auto associated = hex("50515253c0c1c2c3c4c5c6c7");
  const std::string text =
      "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
  const std::vector<std::uint8_t> plaintext(text.begin(), text.end());
  const auto sealed = secagg::seal(key, nonce, plaintext, associated);
  REQUIRE(sealed.size() == plaintext.size() + secagg::tag_size);
  CHECK(std::vector<std::uint8_t>(sealed.begin(), sealed.begin() + 16) == hex("d31a8d34648e60db7b86afbc53ef7ec2"));
  CHECK(std::vector<std::uint8_t>(sealed.end() - 16, sealed.end()) == hex("1ae10b594f09e26a7e902ecbd0600691"));
  CHECK(secagg::open(key, nonce, sealed, associated) == plaintext);
  auto damaged = sealed;
  damaged[3] ^= 1;
  CHECK_FALSE(secagg::open(key, nonce, damaged, associated).has_value());
  auto other_nonce = nonce;
  other_nonce[0] ^= 1;
  CHECK_FALSE(secagg::open(key, other_nonce, sealed, associated).has_value());
  CHECK_FALSE(secagg::open(key, nonce, sealed, hex("50515253")).has_value());
  CHECK_FALSE(secagg::open(key, nonce, std::span(sealed).first(10), associated).has_value());
}

TEST_CASE("AES-256-CTR: NIST SP 800-38A F.5.5, and masks from seeds") {
  const auto key = fixed<32>("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4");
  const auto counter = fixed<16>("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff");
  std::vector<std::uint8_t> keystream(32);
  secagg::detail::aes256_ctr_keystream(key, counter, keystream);
  // Ciphertext = plaintext XOR keystream for the first two blocks of the published example.
  const auto plaintext = hex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51");
  const auto ciphertext = hex("601ec313775789a5b7a7f504bbf3d228f443e3ca4d62b59aca84e990cacaf5c5");
  for (std::size_t i = 0; i < 32; ++i) CHECK(std::uint8_t(plaintext[i] ^ keystream[i]) == ciphertext[i]);
  // A mask is the keystream from counter zero: the same seed gives the same mask, another seed another.
  std::vector<std::uint32_t> first(1000), again(1000), other(1000);
  secagg::expand_mask(key, first);
  secagg::expand_mask(key, again);
  auto other_key = key;
  other_key[31] ^= 1;
  secagg::expand_mask(other_key, other);
  CHECK(first == again);
  CHECK(first != other);
}

#pragma once
// Shamir secret sharing (Shamir 1979) of 32-byte secrets, t of n: each learner shares its
// self-mask seed and its mask secret key among its neighbours, so that the survivors can rebuild
// what the aggregator needs and no fewer than t can rebuild anything. The field is GF(2^61 - 1);
// a secret is cut into five pieces of at most 56 bits, each shared with its own random
// polynomial of degree t - 1 whose coefficients come from OpenSSL's generator.

#include <openssl/rand.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "flotilla/algorithms/secure_aggregation/crypto.hpp"
#include "flotilla/errors.hpp"

namespace flotilla::secure_aggregation {

/// The field's modulus, the Mersenne prime 2^61 - 1.
inline constexpr std::uint64_t field_modulus = (std::uint64_t{1} << 61) - 1;
/// Field elements a 32-byte secret is cut into (7 bytes each, the last 4).
inline constexpr std::size_t pieces_per_secret = 5;

/// One holder's share of one secret: the polynomials' values at the holder's point x (1 to
/// 2^61 - 2; a learner's point is its position in the round plus one).
struct share {
  std::uint64_t x = 0;
  std::array<std::uint64_t, pieces_per_secret> y{};
};

namespace detail {
__extension__ typedef unsigned __int128 field_product;

inline std::uint64_t field_add(std::uint64_t a, std::uint64_t b) {
  const std::uint64_t sum = a + b;  // < 2^62: no overflow
  return sum >= field_modulus ? sum - field_modulus : sum;
}
inline std::uint64_t field_subtract(std::uint64_t a, std::uint64_t b) { return a >= b ? a - b : a + field_modulus - b; }
inline std::uint64_t field_multiply(std::uint64_t a, std::uint64_t b) {
  const field_product product = field_product(a) * b;  // < 2^122
  const std::uint64_t folded = std::uint64_t(product & field_modulus) + std::uint64_t(product >> 61);  // 2^61 = 1
  return folded >= field_modulus ? folded - field_modulus : folded;
}
inline std::uint64_t field_inverse(std::uint64_t a) {  // a^(p - 2), a != 0
  std::uint64_t result = 1, base = a;
  for (std::uint64_t exponent = field_modulus - 2; exponent > 0; exponent >>= 1) {
    if (exponent & 1) result = field_multiply(result, base);
    base = field_multiply(base, base);
  }
  return result;
}
// A uniform field element from OpenSSL's generator (61 bits, the one value past p redrawn).
inline std::uint64_t random_field_element() {
  for (;;) {
    std::uint64_t word = 0;
    require(RAND_priv_bytes(reinterpret_cast<unsigned char*>(&word), sizeof word), "drawing a polynomial coefficient");
    word >>= 3;
    if (word < field_modulus) return word;
  }
}
inline std::array<std::uint64_t, pieces_per_secret> cut(const key_bytes& secret) {
  std::array<std::uint64_t, pieces_per_secret> pieces{};
  for (std::size_t byte = 0; byte < secret.size(); ++byte) pieces[byte / 7] |= std::uint64_t(secret[byte]) << (8 * (byte % 7));
  return pieces;
}
}  // namespace detail

/// @brief Shares of `secret` for the holders at `points`, any `threshold` of which rebuild it.
/// @throws configuration_error for a threshold outside [1, points], a point of 0 or past the
///   field, or a point given twice.
[[nodiscard]] inline std::vector<share> split(const key_bytes& secret, std::size_t threshold,
                                              std::span<const std::uint64_t> points) {
  if (threshold < 1 || threshold > points.size())
    throw configuration_error("a threshold of " + std::to_string(threshold) + " cannot work with " +
                              std::to_string(points.size()) + " holders");
  std::set<std::uint64_t> seen;
  for (const auto x : points)
    if (x == 0 || x >= field_modulus || !seen.insert(x).second)
      throw configuration_error("share point " + std::to_string(x) + " is zero, outside the field or given twice");
  const auto pieces = detail::cut(secret);
  std::vector<share> shares(points.size());
  for (std::size_t i = 0; i < points.size(); ++i) shares[i].x = points[i];
  for (std::size_t piece = 0; piece < pieces_per_secret; ++piece) {
    std::vector<std::uint64_t> coefficients(threshold);  // a_0 = the piece; the rest random
    coefficients[0] = pieces[piece];
    for (std::size_t j = 1; j < threshold; ++j) coefficients[j] = detail::random_field_element();
    for (auto& held : shares) {  // Horner's rule at x
      std::uint64_t value = 0;
      for (std::size_t j = threshold; j-- > 0;) value = detail::field_add(detail::field_multiply(value, held.x), coefficients[j]);
      held.y[piece] = value;
    }
  }
  return shares;
}

/// @brief The secret rebuilt from the first `threshold` of `shares` (Lagrange interpolation at 0).
/// @throws security_error naming the problem when there are fewer than `threshold` shares, two
///   share one point, a point or value is outside the field, or the result is not a secret
///   (pieces past 56 bits: the shares were not of one secret).
[[nodiscard]] inline key_bytes combine(std::span<const share> shares, std::size_t threshold) {
  if (threshold < 1 || shares.size() < threshold)
    throw security_error("rebuilding a secret needs " + std::to_string(threshold) + " shares; " +
                         std::to_string(shares.size()) + " are held");
  const auto used = shares.first(threshold);
  std::set<std::uint64_t> seen;
  for (const auto& held : used) {
    if (held.x == 0 || held.x >= field_modulus || !seen.insert(held.x).second)
      throw security_error("share point " + std::to_string(held.x) + " is zero, outside the field or repeated");
    for (const auto value : held.y)
      if (value >= field_modulus) throw security_error("a share's value lies outside the field");
  }
  std::array<std::uint64_t, pieces_per_secret> pieces{};
  for (std::size_t i = 0; i < used.size(); ++i) {
    // The Lagrange basis polynomial of point i at 0: prod_{j != i} x_j / (x_j - x_i).
    std::uint64_t numerator = 1, denominator = 1;
    for (std::size_t j = 0; j < used.size(); ++j) {
      if (j == i) continue;
      numerator = detail::field_multiply(numerator, used[j].x);
      denominator = detail::field_multiply(denominator, detail::field_subtract(used[j].x, used[i].x));
    }
    const std::uint64_t basis = detail::field_multiply(numerator, detail::field_inverse(denominator));
    for (std::size_t piece = 0; piece < pieces_per_secret; ++piece)
      pieces[piece] = detail::field_add(pieces[piece], detail::field_multiply(basis, used[i].y[piece]));
  }
  key_bytes secret{};
  for (std::size_t piece = 0; piece < pieces_per_secret; ++piece) {
    const std::size_t bytes = piece + 1 < pieces_per_secret ? 7 : secret.size() - 7 * piece;
    if (pieces[piece] >> (8 * bytes)) throw security_error("the shares do not belong to one secret");
    for (std::size_t b = 0; b < bytes; ++b) secret[7 * piece + b] = std::uint8_t(pieces[piece] >> (8 * b));
  }
  return secret;
}

}  // namespace flotilla::secure_aggregation

#include <flotilla/algorithms/secure_aggregation/shamir.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <vector>

// Shamir sharing: any t shares rebuild the secret, fewer are refused, and t - 1 shares are
// consistent with every secret (they say nothing about it).

namespace secagg = flotilla::secure_aggregation;

namespace {
secagg::key_bytes some_secret(std::uint8_t first) {
  secagg::key_bytes secret{};
  for (std::size_t i = 0; i < secret.size(); ++i) secret[i] = std::uint8_t(first + 37 * i);
  return secret;
}
}  // namespace

TEST_CASE("field arithmetic modulo 2^61 - 1 by hand") {
  using namespace secagg::detail;
  const std::uint64_t p = secagg::field_modulus;
  CHECK(field_add(p - 1, 1) == 0);
  CHECK(field_subtract(0, 1) == p - 1);
  CHECK(field_multiply(p - 1, p - 1) == 1);            // (-1)(-1)
  CHECK(field_multiply(std::uint64_t{1} << 60, 2) == 1);  // 2^61 = 1
  CHECK(field_multiply(123456789, field_inverse(123456789)) == 1);
}

TEST_CASE("every 3 of 5 shares rebuild the secret; 2 are refused") {
  const auto secret = some_secret(11);
  const std::vector<std::uint64_t> points{1, 2, 3, 4, 5};
  const auto shares = secagg::split(secret, 3, points);
  REQUIRE(shares.size() == 5);
  for (std::size_t a = 0; a < 5; ++a)
    for (std::size_t b = a + 1; b < 5; ++b)
      for (std::size_t c = b + 1; c < 5; ++c) {
        const std::vector<secagg::share> three{shares[a], shares[b], shares[c]};
        CHECK(secagg::combine(three, 3) == secret);
      }
  CHECK(secagg::combine(shares, 3) == secret);  // more than enough: the first three are used
  const std::vector<secagg::share> two{shares[0], shares[4]};
  CHECK_THROWS_WITH_AS((void)secagg::combine(two, 3), "rebuilding a secret needs 3 shares; 2 are held", flotilla::security_error);
  // Sharing twice draws new polynomials: the shares differ, the secret does not.
  const auto again = secagg::split(secret, 3, points);
  CHECK(again[0].y != shares[0].y);
  CHECK(secagg::combine(again, 3) == secret);
}

TEST_CASE("t - 1 shares fit every secret: for any other secret a polynomial passes through them") {
  // With t = 3, two shares and any candidate secret s' fix a degree-2 polynomial through
  // (0, s'), (x1, y1), (x2, y2); its value at a third point is a valid third share, and the three
  // rebuild s'. So the two shares alone cannot tell s from s'.
  const auto secret = some_secret(1), candidate = some_secret(200);
  const std::vector<std::uint64_t> points{7, 19, 42};
  const auto shares = secagg::split(secret, 3, points);
  using namespace secagg::detail;
  secagg::share forged{42, {}};
  const auto pieces = cut(candidate);
  for (std::size_t piece = 0; piece < secagg::pieces_per_secret; ++piece) {
    // Lagrange through x = 0, 7, 19, evaluated at 42.
    const std::uint64_t xs[3] = {0, 7, 19};
    const std::uint64_t ys[3] = {pieces[piece], shares[0].y[piece], shares[1].y[piece]};
    std::uint64_t value = 0;
    for (int i = 0; i < 3; ++i) {
      std::uint64_t numerator = 1, denominator = 1;
      for (int j = 0; j < 3; ++j) {
        if (j == i) continue;
        numerator = field_multiply(numerator, field_subtract(42, xs[j]));
        denominator = field_multiply(denominator, field_subtract(xs[i], xs[j]));
      }
      value = field_add(value, field_multiply(ys[i], field_multiply(numerator, field_inverse(denominator))));
    }
    forged.y[piece] = value;
  }
  const std::vector<secagg::share> mixed{shares[0], shares[1], forged};
  CHECK(secagg::combine(mixed, 3) == candidate);
  CHECK(secagg::combine(shares, 3) == secret);
}

TEST_CASE("bad thresholds, points and shares are refused with the reason") {
  const auto secret = some_secret(3);
  const std::vector<std::uint64_t> three{1, 2, 3};
  CHECK_THROWS_WITH_AS((void)secagg::split(secret, 4, three), "a threshold of 4 cannot work with 3 holders", flotilla::configuration_error);
  CHECK_THROWS_WITH_AS((void)secagg::split(secret, 0, three), "a threshold of 0 cannot work with 3 holders", flotilla::configuration_error);
  const std::vector<std::uint64_t> zero{0, 1, 2}, twice{1, 2, 2};
  CHECK_THROWS_WITH_AS((void)secagg::split(secret, 2, zero), "share point 0 is zero, outside the field or given twice",
                       flotilla::configuration_error);
  CHECK_THROWS_WITH_AS((void)secagg::split(secret, 2, twice), "share point 2 is zero, outside the field or given twice",
                       flotilla::configuration_error);
  auto shares = secagg::split(secret, 2, three);
  auto repeated = shares;
  repeated[1].x = repeated[0].x;
  CHECK_THROWS_WITH_AS((void)secagg::combine(repeated, 2), "share point 1 is zero, outside the field or repeated",
                       flotilla::security_error);
  auto outside = shares;
  outside[0].y[2] = secagg::field_modulus;
  CHECK_THROWS_WITH_AS((void)secagg::combine(outside, 2), "a share's value lies outside the field", flotilla::security_error);
  auto tampered = shares;
  // Lagrange weight of x = 1 among {1, 2} is 2: adding 2^59 moves the piece by 2^60, past 56 bits.
  // (Small changes can pass this check: integrity is the AEAD's job; this catches mixed secrets.)
  tampered[0].y[0] = secagg::detail::field_add(tampered[0].y[0], std::uint64_t{1} << 59);
  CHECK_THROWS_WITH_AS((void)secagg::combine(tampered, 2), "the shares do not belong to one secret", flotilla::security_error);
}

#include <flotilla/algorithms/secure_aggregation/masking.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

// Quantization is unbiased and bounded, sums dequantize exactly, masks cancel in pairs, and
// settings that could wrap the modulus are refused.

namespace secagg = flotilla::secure_aggregation;
using seeded = flotilla::privacy::seeded_random_for_tests_only;

TEST_CASE("quantization by hand: the ends, the middle, and clipping") {
  const secagg::quantization q{.clipping_range = 1, .quantization_range = 5, .modulus_bits = 32};  // steps of 0.5
  const std::vector<float> values{-1, -0.5f, 0, 0.5f, 1, -7, 9};
  std::vector<std::uint32_t> out(values.size());
  secagg::quantize(std::span<const float>(values), q, out, seeded(1));
  CHECK(out == std::vector<std::uint32_t>{0, 1, 2, 3, 4, 0, 4});
}

TEST_CASE("stochastic rounding is unbiased: 0.3 of a step rounds up 30% of the time") {
  const secagg::quantization q{.clipping_range = 1, .quantization_range = 5, .modulus_bits = 32};
  const std::size_t n = 200'000;
  const std::vector<double> values(n, -1 + 0.3 * 0.5);  // 0.3 of the way from step 0 to step 1
  std::vector<std::uint32_t> out(n);
  secagg::quantize(std::span<const double>(values), q, out, seeded(2));
  double ups = 0;
  std::uint32_t largest = 0;
  for (auto v : out) {
    ups += v;
    largest = std::max(largest, v);
  }
  CHECK(largest == 1);
  CHECK(std::abs(ups / n - 0.3) < 5 * std::sqrt(0.3 * 0.7 / n));  // five standard errors
}

TEST_CASE("the sum of quantized vectors dequantizes to the sum of values within a step per learner") {
  const secagg::quantization q{};  // Flower's: range 8, 2^22 steps, modulus 2^32
  q.validate(1000);
  const std::vector<std::vector<float>> updates{{0.25f, -3.5f, 7.9f}, {1.0f, 2.0f, -8.0f}, {-0.125f, 0.0f, 0.5f}};
  std::vector<std::uint32_t> sum(3, 0);
  for (std::size_t u = 0; u < updates.size(); ++u) {
    std::vector<std::uint32_t> quantized(3);
    secagg::quantize(std::span<const float>(updates[u]), q, quantized, seeded(u));
    for (std::size_t i = 0; i < 3; ++i) sum[i] = (sum[i] + quantized[i]) & q.modulus_mask();
  }
  std::vector<double> back(3);
  secagg::dequantize_sum(std::span<const std::uint32_t>(sum), updates.size(), q, std::span<double>(back));
  for (std::size_t i = 0; i < 3; ++i) {
    const double exact = double(updates[0][i]) + double(updates[1][i]) + double(updates[2][i]);
    CHECK(std::abs(back[i] - exact) <= 3 * q.step());
  }
}

TEST_CASE("masks: the same keystream as expand_mask, and a pair cancels") {
  const auto seed = secagg::make_key_pair().secret;
  const std::uint32_t all = 0xFFFFFFFFu;
  std::vector<std::uint32_t> zero(40'000, 0), expanded(40'000);
  secagg::apply_mask(zero, seed, secagg::mask_sign::add, all);
  secagg::expand_mask(seed, expanded);
  CHECK(zero == expanded);
  std::vector<std::uint32_t> vector(40'000);
  for (std::size_t i = 0; i < vector.size(); ++i) vector[i] = std::uint32_t(i * 2654435761u) & 0xFFFFFu;
  const auto original = vector;
  const std::uint32_t twenty = (1u << 20) - 1;
  secagg::apply_mask(vector, seed, secagg::mask_sign::add, twenty);
  CHECK(vector != original);
  secagg::apply_mask(vector, seed, secagg::mask_sign::subtract, twenty);
  CHECK(vector == original);
}

TEST_CASE("settings that could wrap the sum around the modulus are refused by value") {
  const secagg::quantization q{};
  q.validate(1024);  // 1024 * (2^22 - 1) < 2^32
  CHECK_THROWS_WITH_AS(q.validate(1025),
                       "the sum of 1025 values quantized to [0, 4194303] overflows the modulus 2^32; lower quantization_range "
                       "or raise modulus_bits",
                       flotilla::configuration_error);
  CHECK_THROWS_WITH_AS((secagg::quantization{.clipping_range = 0}.validate(2)), "clipping_range must be positive; got 0",
                       flotilla::configuration_error);
  CHECK_THROWS_WITH_AS((secagg::quantization{.modulus_bits = 40}.validate(2)), "modulus_bits must be in [2, 32]; got 40",
                       flotilla::configuration_error);
}

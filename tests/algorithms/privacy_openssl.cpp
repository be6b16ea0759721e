#include <flotilla/algorithms/privacy/openssl_random.hpp>

#include <flotilla/algorithms/privacy/noise.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <span>
#include <vector>

// OpenSSL's generator as a NoiseSource: noise of the asked variance, and two runs differ.

TEST_CASE("OpenSSL's DRBG gives noise of the asked variance, and two runs differ") {
  static_assert(flotilla::privacy::NoiseSource<flotilla::privacy::openssl_random>);
  const std::size_t n = 500'000;
  std::vector<double> first(n, 0.0), second(n, 0.0);
  flotilla::privacy::add_gaussian_noise(std::span<double>(first), 3.0, flotilla::privacy::openssl_random{});
  flotilla::privacy::add_gaussian_noise(std::span<double>(second), 3.0, flotilla::privacy::openssl_random{});
  double sum = 0, squares = 0;
  for (double x : first) sum += x;
  const double mean = sum / double(n);
  for (double x : first) squares += (x - mean) * (x - mean);
  const double variance = squares / double(n - 1);
  CHECK(std::abs(mean) < 5 * 3 / std::sqrt(double(n)));              // five standard errors
  CHECK(std::abs(variance - 9) < 5 * 9 * std::sqrt(2 / double(n - 1)));
  std::size_t equal = 0;
  for (std::size_t i = 0; i < n; ++i) equal += first[i] == second[i];
  CHECK(equal == 0);
}

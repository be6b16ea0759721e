#include <flotilla/algorithms/privacy/noise.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <numbers>
#include <span>
#include <string>
#include <vector>

// The noise, checked statistically: tolerances are five standard errors of each estimate, so a
// correct sampler fails a check about once in 3.5 million runs, and a wrong one by far more.

namespace privacy = flotilla::privacy;

namespace {
struct moments {
  double mean = 0, variance = 0;
};
template <class Values>
moments moments_of(const Values& values) {
  double sum = 0, squares = 0;
  for (double x : values) sum += x;
  const double mean = sum / double(values.size());
  for (double x : values) squares += (x - mean) * (x - mean);
  return {mean, squares / double(values.size() - 1)};
}
// Standard errors of the mean and of the variance of n normal samples of variance s2.
double mean_error(double s2, double n) { return std::sqrt(s2 / n); }
double variance_error(double s2, double n) { return s2 * std::sqrt(2 / (n - 1)); }
}  // namespace

TEST_CASE("the ziggurat's layers have equal areas and end at zero") {
  const auto& table = privacy::detail::ziggurat();
  const double v = privacy::detail::ziggurat_tables::v;
  for (int i = 1; i < 256; ++i) CHECK(table.x[i] * (table.f[i + 1] - table.f[i]) == doctest::Approx(v).epsilon(1e-9));
  CHECK(table.x[0] * table.f[1] == doctest::Approx(v).epsilon(1e-12));  // the base: rectangle of height f(r)
  CHECK(table.x[256] == 0);
}

TEST_CASE("Gaussian noise has the asked mean, variance and tails") {
  const std::size_t n = 2'000'000;
  const double stddev = 0.25, s2 = stddev * stddev;
  std::vector<float> values(n, 1.5f);
  privacy::add_gaussian_noise(std::span<float>(values), stddev, privacy::seeded_random_for_tests_only(11));
  const auto m = moments_of(values);
  CHECK(std::abs(m.mean - 1.5) < 5 * mean_error(s2, n));
  CHECK(std::abs(m.variance - s2) < 5 * variance_error(s2, n));
  // Tails: P(|z| > 2) = 0.0455003, P(|z| > 3) = 0.0026998 (erfc(k / sqrt 2)).
  for (double k : {2.0, 3.0}) {
    const double p = std::erfc(k / std::numbers::sqrt2);
    double beyond = 0;
    for (float x : values) beyond += std::abs(x - 1.5) > k * stddev;
    CHECK(std::abs(beyond / n - p) < 5 * std::sqrt(p * (1 - p) / n));
  }
}

TEST_CASE("the kernel's generator gives noise of the asked variance, and two runs differ") {
  const std::size_t n = 500'000;
  std::vector<double> first(n, 0.0), second(n, 0.0);
  privacy::add_gaussian_noise(std::span<double>(first), 2.0, privacy::os_random{});
  privacy::add_gaussian_noise(std::span<double>(second), 2.0, privacy::os_random{});
  const auto m = moments_of(first);
  CHECK(std::abs(m.mean) < 5 * mean_error(4, n));
  CHECK(std::abs(m.variance - 4) < 5 * variance_error(4, n));
  std::size_t equal = 0;
  for (std::size_t i = 0; i < n; ++i) equal += first[i] == second[i];
  CHECK(equal == 0);
}

TEST_CASE("a seeded source repeats itself for the same seed and thread count, and only then") {
  std::vector<float> a(700'000, 0.f), b(700'000, 0.f), c(700'000, 0.f);
  privacy::add_gaussian_noise(std::span<float>(a), 1.0, privacy::seeded_random_for_tests_only(5), 3, 2);
  privacy::add_gaussian_noise(std::span<float>(b), 1.0, privacy::seeded_random_for_tests_only(5), 3, 2);
  privacy::add_gaussian_noise(std::span<float>(c), 1.0, privacy::seeded_random_for_tests_only(6), 3, 2);
  CHECK(a == b);
  CHECK(a != c);
}

TEST_CASE("a negative or non-finite standard deviation is refused by value") {
  std::vector<float> values(4, 0.f);
  CHECK_THROWS_WITH_AS(privacy::add_gaussian_noise(std::span<float>(values), -0.5, privacy::os_random{}),
                       "noise standard deviation must be finite and non-negative; got -0.5", flotilla::configuration_error);
}

TEST_CASE("the discrete Gaussian: exact probabilities at sigma = 1, mean and variance at sigma = 3 and 40") {
  SUBCASE("sigma 1: P(k) = exp(-k^2 / 2) / sum_j exp(-j^2 / 2)") {
    privacy::discrete_gaussian<privacy::seeded_random_for_tests_only> draw(1.0, privacy::seeded_random_for_tests_only(21));
    CHECK(draw.variance() == 1.0);
    const int n = 400'000;
    std::map<std::int64_t, int> counts;
    for (int i = 0; i < n; ++i) ++counts[draw()];
    double normalizer = 0;
    for (int k = -40; k <= 40; ++k) normalizer += std::exp(-k * k / 2.0);
    for (int k = -4; k <= 4; ++k) {
      const double p = std::exp(-k * k / 2.0) / normalizer;
      CHECK(std::abs(counts[k] / double(n) - p) < 5 * std::sqrt(p * (1 - p) / n));
    }
  }
  for (double sigma : {3.0, 40.0}) {
    CAPTURE(sigma);
    privacy::discrete_gaussian<privacy::seeded_random_for_tests_only> draw(sigma, privacy::seeded_random_for_tests_only(22));
    // The exact variance of N_Z(0, sigma^2): sum k^2 exp(-k^2 / 2s^2) / sum exp(-k^2 / 2s^2).
    double normalizer = 0, second = 0;
    for (int k = -int(40 * sigma); k <= int(40 * sigma); ++k) {
      const double weight = std::exp(-k * k / (2 * sigma * sigma));
      normalizer += weight;
      second += double(k) * k * weight;
    }
    const double s2 = second / normalizer;
    const int n = 300'000;
    std::vector<double> samples(n);
    for (auto& x : samples) x = double(draw());
    const auto m = moments_of(samples);
    CHECK(std::abs(m.mean) < 5 * mean_error(s2, n));
    CHECK(std::abs(m.variance - s2) < 5 * variance_error(s2, n));
  }
}

TEST_CASE("the discrete Gaussian rounds sigma^2 up, never down, and refuses sigma outside (0, 2^20]") {
  privacy::discrete_gaussian<privacy::seeded_random_for_tests_only> draw(0.3, privacy::seeded_random_for_tests_only(1));
  CHECK(draw.variance() >= 0.09);
  CHECK(draw.variance() - 0.09 <= 1.0 / 65536);
  using source = privacy::seeded_random_for_tests_only;
  CHECK_THROWS_WITH_AS(privacy::discrete_gaussian<source>(0, source(1)),
                       "the discrete Gaussian's sigma must be in (0, 2^20]; got 0", flotilla::configuration_error);
  CHECK_THROWS_WITH_AS(privacy::discrete_gaussian<source>(2e6, source(1)),
                       "the discrete Gaussian's sigma must be in (0, 2^20]; got 2e+06", flotilla::configuration_error);
}

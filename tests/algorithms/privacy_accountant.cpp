#include <flotilla/algorithms/privacy/accountant.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

// The accountant against values published by two independent projects, Meta's Opacus and
// Google's dp_accounting (with its predecessor TensorFlow Privacy), and against hand-computed
// formulas and numerical integration where the publications disagree.

namespace privacy = flotilla::privacy;
using flotilla::sampling;

namespace {
double rdp(double sigma, double q, double order, std::uint64_t rounds = 1, sampling draw = sampling::poisson) {
  return double(rounds) * privacy::rdp_per_round(sigma, q, draw, order);
}
}  // namespace

TEST_CASE("Opacus: sigma 1.5, q 0.04, 2,250 steps, delta 1e-5 spends epsilon 7.32911117143") {
  // opacus/tests/accountants_test.py, test_rdp_accountant (default orders 1.1 to 10.9, 12 to 63).
  CHECK(privacy::accountant(1.5, 0.04, 1e-5).epsilon(2250) == doctest::Approx(7.32911117143).epsilon(1e-10));
}

TEST_CASE("dp_accounting: Poisson-subsampled Gaussian RDP at integer orders, sigma 2.5, q 0.01, 50 steps") {
  // dp_accounting/rdp/rdp_privacy_accountant_test.py, test_compute_rdp_poisson_sampled_gaussian.
  CHECK(rdp(2.5, 0.01, 5, 50) == doctest::Approx(2.18075656e-03).epsilon(1e-8));
  CHECK(rdp(2.5, 0.01, 50, 50) == doctest::Approx(2.38460375e-02).epsilon(1e-8));
  CHECK(rdp(2.5, 0.01, 100, 50) == doctest::Approx(1.67416308e+02).epsilon(1e-8));
  CHECK(std::isinf(rdp(2.5, 0.01, std::numeric_limits<double>::infinity(), 50)));
}

TEST_CASE("fractional orders: TensorFlow Privacy's published values and a numerical integral") {
  // tensorflow_privacy rdp_accountant_test.py, test_compute_rdp_sequence: 0.00065 and 0.001085
  // to 1e-5. The integral of mu0 (1 - q + q exp((2z - 1) / (2 sigma^2)))^alpha, summed by the
  // trapezoid rule over 400,000 steps (A_alpha's definition), gives 6.50070895e-4 and
  // 1.08541806e-3. (dp_accounting now publishes 6.7058e-4 and 1.08549e-3 here, a looser bound.)
  CHECK(rdp(2.5, 0.01, 1.5, 50) == doctest::Approx(6.50070895e-4).epsilon(1e-7));
  CHECK(rdp(2.5, 0.01, 2.5, 50) == doctest::Approx(1.08541806e-3).epsilon(1e-7));
  CHECK(std::abs(rdp(2.5, 0.01, 1.5, 50) - 0.00065) < 1e-5);
  CHECK(std::abs(rdp(2.5, 0.01, 2.5, 50) - 0.001085) < 1e-5);
  // test_compute_rdp_scalar: q 0.1, sigma 2, 10 steps, order 5 -> 0.07737 (5 places).
  CHECK(std::abs(rdp(2, 0.1, 5, 10) - 0.07737) < 5e-6);
}

TEST_CASE("conversion to (epsilon, delta): dp_accounting's pure-DP case by Balle et al. 2020") {
  // test_compute_epsilon_delta_pure_dp: RDP 1.1 at orders 2 to 32, delta 1e-5 -> 1.32783806176
  // at order 32. By hand: 1.1 + log(31/32) - (log(1e-5) + log(32)) / 31.
  std::vector<double> orders, values;
  for (int order = 2; order <= 32; ++order) {
    orders.push_back(order);
    values.push_back(1.1);
  }
  const auto spent = privacy::epsilon_from_rdp(orders, values, 1e-5);
  CHECK(spent.epsilon == doctest::Approx(1.32783806176).epsilon(1e-11));
  CHECK(spent.order == 32);
  CHECK(spent.epsilon == doctest::Approx(1.1 + std::log(31.0 / 32) - (std::log(1e-5) + std::log(32.0)) / 31).epsilon(1e-14));
}

TEST_CASE("calibration: the noise multiplier for a target epsilon, by bisection") {
  SUBCASE("dp_accounting: sigma 4.530877117 gives exactly (1, 1e-6) with q = 1 over orders 1.001 to 99.999") {
    std::vector<double> fine;
    for (int i = 1001; i < 100000; ++i) fine.push_back(0.001 * i);
    CHECK(privacy::accountant(4.530877117, 1, 1e-6, sampling::poisson, fine).epsilon(1) == doctest::Approx(1).epsilon(1e-7));
    CHECK(privacy::noise_multiplier_for(1, 1e-6, 1, 1, sampling::poisson, fine) == doctest::Approx(4.530877117).epsilon(1e-7));
  }
  SUBCASE("Opacus: epsilon 8, delta 1e-5, q 0.04, 90 epochs; its bisection stops at 1.425307617, within 0.1 of the target") {
    const double sigma = privacy::noise_multiplier_for(8, 1e-5, 0.04, 2250);
    CHECK(privacy::accountant(sigma, 0.04, 1e-5).epsilon(2250) == doctest::Approx(8).epsilon(1e-8));
    CHECK(privacy::accountant(sigma, 0.04, 1e-5).epsilon(2250) <= 8);  // rounded up: never over the target
    CHECK(sigma < 1.425307617);
    const double theirs = privacy::accountant(1.425307617, 0.04, 1e-5).epsilon(2250);
    CHECK(theirs <= 8);
    CHECK(theirs > 7.9);
  }
  SUBCASE("round trip: the epsilon of Opacus's test case calibrates back to sigma 1.5") {
    CHECK(privacy::noise_multiplier_for(7.32911117143, 1e-5, 0.04, 2250) == doctest::Approx(1.5).epsilon(1e-8));
  }
}

TEST_CASE("fixed-size sampling: Wang et al. 2019's bound at sigma / 2, against the formula by hand") {
  // Order 2: log(1 + q^2 min(4 (e^eps(2) - 1), 2 e^eps(2))) with eps(2) = 2 / (2 (sigma/2)^2).
  const double sigma = 3, q = 0.05, eps2 = 2 / (2 * (sigma / 2) * (sigma / 2));
  CHECK(rdp(sigma, q, 2, 1, sampling::fixed_size) ==
        doctest::Approx(std::log1p(q * q * std::min(4 * std::expm1(eps2), 2 * std::exp(eps2)))).epsilon(1e-12));
  // Order 3 adds the j = 3 term q^3 C(3,3) 2 e^(2 eps(3)), divided by alpha - 1 = 2.
  const double eps3 = 3 / (2 * (sigma / 2) * (sigma / 2));
  const double a3 = 1 + q * q * 3 * std::min(4 * std::expm1(eps2), 2 * std::exp(eps2)) + q * q * q * 2 * std::exp(2 * eps3);
  CHECK(rdp(sigma, q, 3, 1, sampling::fixed_size) == doctest::Approx(std::log(a3) / 2).epsilon(1e-12));
  // Fractional orders interpolate (alpha - 1) RDP linearly between integers (Corollary 10).
  CHECK(rdp(sigma, q, 2.5, 1, sampling::fixed_size) * 1.5 ==
        doctest::Approx(0.5 * rdp(sigma, q, 2, 1, sampling::fixed_size) + 0.5 * 2 * rdp(sigma, q, 3, 1, sampling::fixed_size)).epsilon(1e-12));
  // It costs more than Poisson sampling at the same rate: replace-one moves the sum by 2C.
  CHECK(privacy::accountant(1.5, 0.04, 1e-5, sampling::fixed_size).epsilon(2250) >
        privacy::accountant(1.5, 0.04, 1e-5).epsilon(2250));
}

TEST_CASE("epsilon grows with rounds and falls with sigma; rounds_within inverts it") {
  const privacy::accountant accountant(1.1, 0.01, 1e-5);
  CHECK(accountant.epsilon(0) == 0);
  double last = 0;
  for (std::uint64_t rounds : {1, 10, 100, 1000, 10000}) {
    CHECK(accountant.epsilon(rounds) > last);
    last = accountant.epsilon(rounds);
  }
  last = std::numeric_limits<double>::infinity();
  for (double sigma : {0.6, 0.8, 1.0, 1.5, 3.0, 10.0}) {
    const double epsilon = privacy::accountant(sigma, 0.01, 1e-5).epsilon(1000);
    CHECK(epsilon < last);
    last = epsilon;
  }
  const auto rounds = accountant.rounds_within(2.0);
  CHECK(accountant.epsilon(rounds) <= 2.0);
  CHECK(accountant.epsilon(rounds + 1) > 2.0);
}

TEST_CASE("invalid settings are refused with messages naming the value") {
  CHECK_THROWS_WITH_AS((void)privacy::accountant(0, 0.1, 1e-5), "the noise multiplier must be positive and finite; got 0", flotilla::configuration_error);
  CHECK_THROWS_WITH_AS((void)privacy::accountant(-1, 0.1, 1e-5), "the noise multiplier must be positive and finite; got -1", flotilla::configuration_error);
  CHECK_THROWS_WITH_AS((void)privacy::accountant(1, 0, 1e-5), "the sampling rate must be in (0, 1]; got 0", flotilla::configuration_error);
  CHECK_THROWS_WITH_AS((void)privacy::accountant(1, 1.5, 1e-5), "the sampling rate must be in (0, 1]; got 1.5", flotilla::configuration_error);
  CHECK_THROWS_WITH_AS((void)privacy::accountant(1, 0.1, 0), "delta must be in (0, 1); got 0", flotilla::configuration_error);
  CHECK_THROWS_WITH_AS((void)privacy::accountant(1, 0.1, 1), "delta must be in (0, 1); got 1", flotilla::configuration_error);
  CHECK_THROWS_WITH_AS((void)privacy::noise_multiplier_for(0, 1e-5, 0.1, 10), "epsilon must be positive and finite; got 0", flotilla::configuration_error);
  CHECK_THROWS_WITH_AS((void)privacy::noise_multiplier_for(-2, 1e-5, 0.1, 10), "epsilon must be positive and finite; got -2", flotilla::configuration_error);
  CHECK_THROWS_WITH_AS((void)privacy::noise_multiplier_for(1, 1e-5, 0.1, 0), "the number of rounds must be at least one", flotilla::configuration_error);
  CHECK_THROWS_WITH_AS((void)privacy::rdp_per_round(1, 0.1, sampling::poisson, 1), "a Renyi order must exceed 1; got 1", flotilla::configuration_error);
}

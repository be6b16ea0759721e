#pragma once
// The privacy accountant: what a run of the subsampled Gaussian mechanism has spent, as
// (epsilon, delta). Renyi DP (Mironov 2017) per round at a grid of orders, composed over rounds
// by addition, then converted to (epsilon, delta) with Balle et al. 2020, Theorem 21 (the
// conversion Opacus and Google's dp_accounting use), taking the best order.
//
//   Poisson sampling (each learner with probability q), add/remove-one neighbours:
//     Mironov, Talwar and Zhang 2019, "Renyi Differential Privacy of the Sampled Gaussian
//     Mechanism": exact A_alpha for integer orders, the two-series form for fractional ones.
//   Fixed-size sampling (m of N without replacement), replace-one neighbours:
//     Wang, Balle and Kasiviswanathan 2019, Theorem 9, with Corollary 10's interpolation for
//     fractional orders. Replacing one learner moves a sum of updates clipped to C by up to 2C,
//     so the Gaussian is taken at noise multiplier sigma / 2 there.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>
#include <string>
#include <vector>

#include "flotilla/detail/text.hpp"
#include "flotilla/errors.hpp"
#include "flotilla/fwd.hpp"

namespace flotilla::privacy {

namespace detail {
inline std::string shown(double value) { return flotilla::detail::number(value); }

inline void require_noise_multiplier(double sigma) {
  if (!(sigma > 0) || !std::isfinite(sigma))
    throw configuration_error("the noise multiplier must be positive and finite; got " + shown(sigma));
}
inline void require_sampling_rate(double q) {
  if (!(q > 0 && q <= 1)) throw configuration_error("the sampling rate must be in (0, 1]; got " + shown(q));
}
inline void require_delta(double delta) {
  if (!(delta > 0 && delta < 1)) throw configuration_error("delta must be in (0, 1); got " + shown(delta));
}
inline void require_epsilon(double epsilon) {
  if (!(epsilon > 0) || !std::isfinite(epsilon))
    throw configuration_error("epsilon must be positive and finite; got " + shown(epsilon));
}

constexpr double minus_infinity = -std::numeric_limits<double>::infinity();

// log(exp(a) + exp(b)) and log(exp(a) - exp(b)) for a >= b, without leaving log space.
inline double log_add(double a, double b) {
  if (a < b) std::swap(a, b);
  if (b == minus_infinity) return a;
  return a + std::log1p(std::exp(b - a));
}
inline double log_sub(double a, double b) {
  if (b == minus_infinity) return a;
  if (b >= a) return minus_infinity;  // rounding: the difference is below what doubles resolve
  return a + std::log1p(-std::exp(b - a));
}

// log(erfc(x)), also where erfc underflows (its asymptotic series beyond x = 25).
inline double log_erfc(double x) {
  if (x <= 25) return std::log(std::erfc(x));
  const double r = 1 / (x * x);
  return -x * x - std::log(x) - 0.5 * std::log(std::numbers::pi) + std::log1p(r * (-0.5 + r * (0.75 - 1.875 * r)));
}

inline double log_binomial(double n, double k) {
  return std::lgamma(n + 1) - std::lgamma(k + 1) - std::lgamma(n - k + 1);
}

// log A_alpha of the Poisson-subsampled Gaussian, integer alpha: a finite binomial sum.
inline double log_a_integer(double q, double sigma, int alpha) {
  double log_a = minus_infinity;
  for (int k = 0; k <= alpha; ++k)
    log_a = log_add(log_a, log_binomial(alpha, k) + k * std::log(q) + (alpha - k) * std::log1p(-q) +
                               (double(k) * k - k) / (2 * sigma * sigma));
  return log_a;
}

// log A_alpha for fractional alpha: A_0 + A_1, two series split at z0 (Mironov et al. 2019,
// section 3.3), summed in log space with the signs of the generalized binomial coefficients.
inline double log_a_fractional(double q, double sigma, double alpha) {
  double a0_positive = minus_infinity, a0_negative = minus_infinity;
  double a1_positive = minus_infinity, a1_negative = minus_infinity;
  const double z0 = sigma * sigma * std::log(1 / q - 1) + 0.5;
  const double root2_sigma = std::numbers::sqrt2 * sigma;
  double log_coefficient = 0;  // log |binomial(alpha, i)|
  int sign = 1;
  for (int i = 0;; ++i) {
    const double j = alpha - i;
    const double log_t0 = log_coefficient + i * std::log(q) + j * std::log1p(-q);
    const double log_t1 = log_coefficient + j * std::log(q) + i * std::log1p(-q);
    const double log_s0 = log_t0 + (double(i) * i - i) / (2 * sigma * sigma) + std::log(0.5) + log_erfc((i - z0) / root2_sigma);
    const double log_s1 = log_t1 + (j * j - j) / (2 * sigma * sigma) + std::log(0.5) + log_erfc((z0 - j) / root2_sigma);
    if (sign > 0) {
      a0_positive = log_add(a0_positive, log_s0);
      a1_positive = log_add(a1_positive, log_s1);
    } else {
      a0_negative = log_add(a0_negative, log_s0);
      a1_negative = log_add(a1_negative, log_s1);
    }
    if (i > alpha && std::max(log_s0, log_s1) < -30) break;
    if (i > 100000) break;  // converged long before for any order the accountant uses
    log_coefficient += std::log(std::abs(alpha - i)) - std::log(i + 1.0);
    if (alpha - i < 0) sign = -sign;
  }
  return log_add(log_sub(a0_positive, a0_negative), log_sub(a1_positive, a1_negative));
}

// Wang et al. 2019, Theorem 9, for the Gaussian (epsilon(infinity) is infinite): log of the
// bracket, for integer alpha >= 2.
inline double log_a_without_replacement(double q, double sigma, int alpha) {
  const auto gaussian = [sigma](double order) { return order / (2 * sigma * sigma); };
  double log_a = 0;  // the 1
  const double eps2 = gaussian(2);
  log_a = log_add(log_a, 2 * std::log(q) + log_binomial(alpha, 2) +
                             std::min(std::log(4.0) + std::log(std::expm1(eps2)), std::log(2.0) + eps2));
  for (int j = 3; j <= alpha; ++j)
    log_a = log_add(log_a, j * std::log(q) + log_binomial(alpha, j) + std::log(2.0) + (j - 1) * gaussian(j));
  return log_a;
}
}  // namespace detail

/// The orders at which the accountant evaluates Renyi DP: 1.1 to 10.9 in steps of 0.1, 12 to 63
/// (as Opacus), and 128, 256, 512, 1024 for very small budgets (as dp_accounting).
[[nodiscard]] inline const std::vector<double>& default_orders() {
  static const std::vector<double> orders = [] {
    std::vector<double> out;
    for (int tenth = 11; tenth <= 109; ++tenth) out.push_back(tenth / 10.0);
    for (int order = 12; order <= 63; ++order) out.push_back(order);
    for (double order : {128.0, 256.0, 512.0, 1024.0}) out.push_back(order);
    return out;
  }();
  return orders;
}

/// Renyi DP at `order` of one round of the Gaussian mechanism with noise multiplier `sigma`
/// (noise standard deviation over the L2 sensitivity C), learners drawn as `draw` says with
/// rate `q`. @throws configuration_error for sigma <= 0, q outside (0, 1] or order <= 1.
[[nodiscard]] inline double rdp_per_round(double sigma, double q, sampling draw, double order) {
  detail::require_noise_multiplier(sigma);
  detail::require_sampling_rate(q);
  if (!(order > 1)) throw configuration_error("a Renyi order must exceed 1; got " + detail::shown(order));
  if (std::isinf(order)) return std::numeric_limits<double>::infinity();
  const bool integer = order == std::floor(order);
  if (draw == sampling::poisson) {
    if (q == 1) return order / (2 * sigma * sigma);
    const double log_a = integer && order <= 4096 ? detail::log_a_integer(q, sigma, int(order))
                                                  : detail::log_a_fractional(q, sigma, order);
    return log_a / (order - 1);
  }
  const double replace_one_sigma = sigma / 2;  // one replaced learner moves the sum by 2C
  if (q == 1) return order / (2 * replace_one_sigma * replace_one_sigma);
  const auto log_a = [&](int alpha) {
    return alpha <= 1 ? 0.0 : detail::log_a_without_replacement(q, replace_one_sigma, alpha);
  };
  if (integer) return log_a(int(order)) / (order - 1);
  const double below = std::floor(order), t = order - below;
  return ((1 - t) * log_a(int(below)) + t * log_a(int(below) + 1)) / (order - 1);
}

/// (epsilon, delta) from Renyi DP, and the order that gave it.
struct privacy_spent {
  double epsilon = 0;
  double order = 0;
};

/// The smallest epsilon over `orders` for which Renyi DP `rdp[i]` at `orders[i]` gives
/// (epsilon, delta)-DP (Balle et al. 2020, Theorem 21). @throws configuration_error for a delta
/// outside (0, 1) or lists of different lengths.
[[nodiscard]] inline privacy_spent epsilon_from_rdp(const std::vector<double>& orders, const std::vector<double>& rdp,
                                                    double delta) {
  detail::require_delta(delta);
  if (orders.size() != rdp.size() || orders.empty())
    throw configuration_error("orders and Renyi DP values must be non-empty lists of the same length");
  privacy_spent best{std::numeric_limits<double>::infinity(), 0};
  for (std::size_t i = 0; i < orders.size(); ++i) {
    const double a = orders[i];
    if (!(a > 1) || !std::isfinite(rdp[i])) continue;
    const double epsilon = rdp[i] + std::log1p(-1 / a) - (std::log(delta) + std::log(a)) / (a - 1);
    if (epsilon < best.epsilon) best = {std::max(0.0, epsilon), a};
  }
  return best;
}

/// @brief What a run spends: the subsampled Gaussian mechanism with noise multiplier sigma,
/// learners drawn with rate q, reported at `delta`. Each round costs the same, so the cost of
/// any number of rounds is one multiplication per order.
class accountant {
 public:
  /// @throws configuration_error naming the value for sigma <= 0, q outside (0, 1] or delta
  ///   outside (0, 1).
  accountant(double noise_multiplier, double sampling_rate, double delta, sampling draw = sampling::poisson,
             std::vector<double> orders = default_orders())
      : sigma_(noise_multiplier), q_(sampling_rate), delta_(delta), draw_(draw), orders_(std::move(orders)) {
    detail::require_noise_multiplier(sigma_);
    detail::require_sampling_rate(q_);
    detail::require_delta(delta_);
    for (double order : orders_) per_round_.push_back(rdp_per_round(sigma_, q_, draw_, order));
  }

  /// Epsilon spent after `rounds` rounds (0 for none).
  [[nodiscard]] double epsilon(std::uint64_t rounds) const { return spent(rounds).epsilon; }

  /// Epsilon spent after `rounds` rounds and the order that bounds it.
  [[nodiscard]] privacy_spent spent(std::uint64_t rounds) const {
    if (rounds == 0) return {0, 0};
    std::vector<double> total(per_round_.size());
    for (std::size_t i = 0; i < total.size(); ++i) total[i] = per_round_[i] * double(rounds);
    return epsilon_from_rdp(orders_, total, delta_);
  }

  /// The most rounds whose total stays within `budget` (0 when even one round exceeds it).
  [[nodiscard]] std::uint64_t rounds_within(double budget) const {
    detail::require_epsilon(budget);
    std::uint64_t low = 0, high = 1;
    while (epsilon(high) <= budget) {
      low = high;
      if (high > (std::uint64_t{1} << 40)) return high;  // effectively unbounded
      high *= 2;
    }
    while (high - low > 1) {  // epsilon(low) <= budget < epsilon(high)
      const auto middle = low + (high - low) / 2;
      (epsilon(middle) <= budget ? low : high) = middle;
    }
    return low;
  }

  [[nodiscard]] double noise_multiplier() const { return sigma_; }
  [[nodiscard]] double sampling_rate() const { return q_; }
  [[nodiscard]] double delta() const { return delta_; }
  [[nodiscard]] sampling draw() const { return draw_; }

 private:
  double sigma_, q_, delta_;
  sampling draw_;
  std::vector<double> orders_;
  std::vector<double> per_round_;  // Renyi DP of one round at each order
};

/// @brief The smallest noise multiplier (to a relative 1e-9, rounded up) for which `rounds`
/// rounds with sampling rate q spend at most `epsilon` at `delta`: bisection on sigma, as the
/// accountant's epsilon falls as sigma grows.
/// @throws configuration_error naming the value for an invalid epsilon, delta, rate or rounds.
[[nodiscard]] inline double noise_multiplier_for(double epsilon, double delta, double sampling_rate,
                                                 std::uint64_t rounds, sampling draw = sampling::poisson,
                                                 const std::vector<double>& orders = default_orders()) {
  detail::require_epsilon(epsilon);
  detail::require_delta(delta);
  detail::require_sampling_rate(sampling_rate);
  if (rounds == 0) throw configuration_error("the number of rounds must be at least one");
  const auto spends = [&](double sigma) { return accountant(sigma, sampling_rate, delta, draw, orders).epsilon(rounds); };
  double low = 0, high = 1;
  while (spends(high) > epsilon) {
    low = high;
    high *= 2;
    if (high > 1e6) throw configuration_error("no noise multiplier up to 1e6 reaches epsilon " + detail::shown(epsilon));
  }
  while (high - low > 1e-9 * high) {  // spends(high) <= epsilon; low is 0 or spends too much
    const double middle = (low + high) / 2;
    (spends(middle) <= epsilon ? high : low) = middle;
  }
  return high;
}

}  // namespace flotilla::privacy

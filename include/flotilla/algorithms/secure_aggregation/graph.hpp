#pragma once
// SecAgg+'s sparse graph (Bell et al. 2020): each learner masks with, and shares its secrets
// among, k neighbours on a Harary graph (a ring where each node links to the k/2 nearest on
// either side, over a random permutation of the learners) instead of all n - 1 others, with
// Shamir threshold t. k and t come from n, an assumed dropout rate and an assumed rate of
// learners colluding with the aggregator, for 40 bits of statistical security and a failure
// probability below 2^-20 (the targets of Google's federated-compute implementation):
//   - security: the honest survivors stay connected (else the aggregator could isolate one),
//     and no learner has t or more colluding neighbours (else they could rebuild its key);
//   - correctness: every learner keeps at least t surviving neighbours (else its secrets are lost).
// The neighbour counts are hypergeometric; the disconnection bound is a union bound over the
// pairs of k/2-long runs of bad learners that could split the ring.

#include <cmath>
#include <cstddef>
#include <limits>
#include <optional>
#include <string>

#include "flotilla/detail/text.hpp"
#include "flotilla/errors.hpp"

namespace flotilla::secure_aggregation {

/// Degree and Shamir threshold for n learners.
struct graph_parameters {
  std::size_t learners = 0;
  std::size_t degree = 0;     ///< k: neighbours per learner (even; n - 1 is the original protocol)
  std::size_t threshold = 0;  ///< t: shares needed to rebuild a secret
};

namespace detail {
constexpr double security_bits = 40;
constexpr double correctness_bits = 20;
constexpr double rounding_guard = 1e-14;  // keeps rate * n from rounding the unsafe way

inline double log_choose(double n, double k) { return std::lgamma(n + 1) - std::lgamma(k + 1) - std::lgamma(n - k + 1); }

// X ~ Hypergeometric(population n, marked m, draws k): log P(X = x).
inline double log_hypergeometric(double n, double m, double k, double x) {
  if (x < 0 || x > k || x > m || k - x > n - m) return -std::numeric_limits<double>::infinity();
  return log_choose(m, x) + log_choose(n - m, k - x) - log_choose(n, k);
}

// The least x with P(X > x) <= p: a threshold above x is safe against X.
inline double least_with_upper_tail_at_most(double n, double m, double k, double p) {
  double above = 0;  // P(X > x), summed down from x = k
  for (double x = k; x >= 0; --x) {
    const double with_x = above + std::exp(log_hypergeometric(n, m, k, x));  // P(X > x - 1)
    if (with_x > p) return x;
    above = with_x;
  }
  return 0;
}

// The least x with P(X <= x) >= p.
inline double least_with_cdf_at_least(double n, double m, double k, double p) {
  double below = 0;
  for (double x = 0; x < k; ++x) {
    below += std::exp(log_hypergeometric(n, m, k, x));
    if (below >= p) return x;
  }
  return k;
}

// A bound on log P(the Harary graph of degree k over n learners falls apart once `bad` of them
// are removed): some two disjoint runs of k/2 consecutive learners must all be bad.
inline double log_disconnection_bound(double n, double k, double bad) {
  if (k > bad) return -std::numeric_limits<double>::infinity();
  const double log_pairs = std::log(n) + std::log(n - k - 1) - std::log(2.0);
  return log_pairs + std::lgamma(bad + 1) + std::lgamma(n - k + 1) - std::lgamma(n + 1) - std::lgamma(bad - k + 1);
}
}  // namespace detail

/// @brief The smallest even degree k, and its threshold t, that meet the targets above for n
/// learners of which up to `dropout_rate` drop out and up to `corruption_rate` collude with an
/// honest-but-curious aggregator.
/// @throws configuration_error naming the value for n < 2, rates outside [0, 1), rates summing
///   above 0.9, or when no degree below n - 1 works (use the complete graph then).
[[nodiscard]] inline graph_parameters find_graph_parameters(std::size_t learners, double dropout_rate,
                                                            double corruption_rate) {
  const auto shown = [](double value) { return flotilla::detail::number(value); };
  if (learners < 2) throw configuration_error("secure aggregation needs at least 2 learners; got " + std::to_string(learners));
  if (!(dropout_rate >= 0 && dropout_rate < 1))
    throw configuration_error("the dropout rate must be in [0, 1); got " + shown(dropout_rate));
  if (!(corruption_rate >= 0 && corruption_rate < 1))
    throw configuration_error("the corruption rate must be in [0, 1); got " + shown(corruption_rate));
  if (dropout_rate + corruption_rate > 0.9)
    throw configuration_error("the dropout and corruption rates must sum to at most 0.9; got " +
                              shown(dropout_rate + corruption_rate));
  const double n = double(learners);
  const double corrupt = std::floor((corruption_rate + detail::rounding_guard) * n);
  const double dropped = std::floor((dropout_rate + detail::rounding_guard) * n);
  const double surviving = std::ceil((1 - dropout_rate - detail::rounding_guard) * n);
  // Security splits its 2^-40 between its two events; each learner's events share by n.
  const double security_per_event = std::pow(2.0, -(detail::security_bits + 1));
  const double log_security_per_event = std::log(security_per_event);
  const double correctness_per_learner = std::pow(2.0, -detail::correctness_bits) / n;
  for (double k = 2; k < n - 1; k += 2) {
    if (detail::log_disconnection_bound(n, k, corrupt + dropped) >= log_security_per_event) continue;
    // t1: the least x with P(corrupt neighbours > x) <= 2^-41 / n; t must exceed it.
    const double t1 = detail::least_with_upper_tail_at_most(n, corrupt, k, security_per_event / n);
    // t2: the least x with P(surviving neighbours <= x) >= 2^-20 / n; t must not exceed it.
    const double t2 = detail::least_with_cdf_at_least(n, surviving, k, correctness_per_learner);
    if (t2 > t1) return {learners, std::size_t(k), std::size_t(std::max(t1 + 1, 2.0))};
  }
  throw configuration_error("no degree below n - 1 gives 40-bit security and 2^-20 failure for " + std::to_string(learners) +
                            " learners at dropout rate " + shown(dropout_rate) + " and corruption rate " +
                            shown(corruption_rate) + "; use the complete graph");
}

}  // namespace flotilla::secure_aggregation

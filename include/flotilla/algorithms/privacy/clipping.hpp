#pragma once
// Clipping an update: the L2 distance of an update from the parameters it was trained from (its
// delta), and scaling that delta to a bound. Both sides use it: the server's clipping rule and
// the learner's own clipping before it replies (learner.hpp).

#include <cmath>
#include <cstddef>
#include <limits>
#include <map>
#include <mutex>

#include "flotilla/arithmetic.hpp"
#include "flotilla/concepts/parameter_set.hpp"
#include "flotilla/detail/parallel.hpp"

namespace flotilla::privacy {

namespace detail {
// Sum of f(i) over [0, count) in double, split across threads; the pieces' sums are added in
// order, so the result does not depend on which thread finished first.
template <class Term>
double parallel_sum(std::size_t count, std::size_t threads, Term term) {
  std::mutex guard;
  std::map<std::size_t, double> pieces;
  flotilla::detail::for_each_piece(count, threads, [&](std::size_t begin, std::size_t end) {
    double lanes[4] = {0, 0, 0, 0};  // independent sums: no wait on the previous addition
    std::size_t i = begin;
    for (; i + 4 <= end; i += 4)
      for (std::size_t lane = 0; lane < 4; ++lane) lanes[lane] += term(i + lane);
    for (; i < end; ++i) lanes[0] += term(i);
    const std::scoped_lock lock(guard);
    pieces[begin] = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
  });
  double total = 0;
  for (const auto& [begin, sum] : pieces) total += sum;
  return total;
}
}  // namespace detail

/// ||update - reference||, the L2 norm of the delta, computed in double.
template <ParameterSet P>
[[nodiscard]] double delta_norm(const P& update, const P& reference, std::size_t threads = 0) {
  require_same_layout(update, reference);
  const auto* u = update.values().data();
  const auto* r = reference.values().data();
  return std::sqrt(detail::parallel_sum(update.values().size(), threads, [&](std::size_t i) {
    const double d = double(u[i]) - double(r[i]);
    return d * d;
  }));
}

/// Writes reference + factor * (update - reference) into `out` (which may be `update` itself).
template <ParameterSet P>
void scale_delta(const P& update, const P& reference, double factor, P& out, std::size_t threads = 0) {
  require_same_layout(update, reference);
  require_same_layout(out, reference);
  const auto* u = update.values().data();
  const auto* r = reference.values().data();
  auto* o = out.values().data();
  using scalar = typename P::scalar_type;
  flotilla::detail::for_each_piece(out.values().size(), threads, [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) o[i] = static_cast<scalar>(double(r[i]) + factor * (double(u[i]) - double(r[i])));
  });
}

/// The factor that scales a delta of norm `norm` to at most `bound`: min(1, bound / norm).
[[nodiscard]] inline double clip_factor(double norm, double bound) { return norm > bound ? bound / norm : 1.0; }

/// @brief How far rounding to the parameter type can move a clipped update: reference + delta is
/// rounded once per value, by at most half a unit in the last place, so the delta the server
/// recomputes is off by at most u (||reference|| + bound) with u = epsilon / 2; and a norm summed
/// over n values in double may be off by n double epsilons. A learner clips to bound minus this
/// margin, so the server's check at the bound holds exactly.
template <ParameterSet P>
[[nodiscard]] double rounding_margin(const P& reference, double bound) {
  const double unit = std::numeric_limits<typename P::scalar_type>::epsilon() / 2;
  const double count = double(reference.values().size()) + 4;
  return 1.01 * unit * (flotilla::l2_norm(reference) + bound) + 2 * count * std::numeric_limits<double>::epsilon() * bound;
}

}  // namespace flotilla::privacy

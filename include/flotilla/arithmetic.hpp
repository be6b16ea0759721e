#pragma once
// Element-wise arithmetic over any ParameterSet's flat buffer: what aggregation rules are made
// of. Each function is one pass over contiguous memory, which compilers vectorize.

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <type_traits>

#include "flotilla/concepts/parameter_set.hpp"
#include "flotilla/detail/text.hpp"
#include "flotilla/errors.hpp"

namespace flotilla {

/// @throws layout_error saying how the two differ, e.g. "update has 1,204 parameters; the
/// global model has 1,210".
template <ParameterSet P>
void require_same_layout(const P& actual, const P& expected, const std::string& actual_name = "update",
                         const std::string& expected_name = "the global model") {
  const auto have = actual.values().size();
  const auto want = expected.values().size();
  if (have != want)
    throw layout_error(actual_name + " has " + detail::grouped(have) + " parameters; " +
                       expected_name + " has " + detail::grouped(want));
  if (!(actual.layout() == expected.layout()))
    throw layout_error(actual_name + " has " + detail::grouped(have) +
                       " parameters like " + expected_name +
                       ", but its tensor layout (names or shapes) differs");
}

/// y += alpha * x
template <ParameterSet P>
void axpy(P& y, typename P::scalar_type alpha, const P& x) {
  require_same_layout(x, y);
  auto out = y.values();
  auto in = x.values();
  for (std::size_t i = 0; i < out.size(); ++i) out[i] += alpha * in[i];
}

/// x *= alpha
template <ParameterSet P>
void scale(P& x, typename P::scalar_type alpha) {
  for (auto& value : x.values()) value *= alpha;
}

/// Every scalar set to `value`.
template <ParameterSet P>
void fill(P& x, typename P::scalar_type value) {
  std::ranges::fill(x.values(), value);
}

/// a - b, with a's layout.
template <ParameterSet P>
[[nodiscard]] P difference(const P& a, const P& b) {
  require_same_layout(b, a);
  P out = a;
  auto result = out.values();
  auto subtrahend = b.values();
  for (std::size_t i = 0; i < result.size(); ++i) result[i] -= subtrahend[i];
  return out;
}

/// Sum of a[i] * b[i], accumulated in double.
template <ParameterSet P>
[[nodiscard]] double dot(const P& a, const P& b) {
  require_same_layout(b, a);
  auto x = a.values();
  auto y = b.values();
  double sum = 0;
  for (std::size_t i = 0; i < x.size(); ++i) sum += double(x[i]) * double(y[i]);
  return sum;
}

/// Euclidean norm, accumulated in double.
template <ParameterSet P>
[[nodiscard]] double l2_norm(const P& x) {
  return std::sqrt(dot(x, x));
}

/// Largest absolute value (0 for an empty set).
template <ParameterSet P>
[[nodiscard]] double linf_norm(const P& x) {
  double largest = 0;
  for (auto value : x.values()) largest = std::max(largest, std::abs(double(value)));
  return largest;
}

namespace detail {
// Whether `count` IEEE scalars are all finite, as one branch-free pass compilers vectorize: a
// value is NaN or infinite exactly when its exponent bits are all ones.
template <std::floating_point S>
bool all_finite(const S* values, std::size_t count) {
  if constexpr (std::numeric_limits<S>::is_iec559 && (sizeof(S) == 4 || sizeof(S) == 8)) {
    using bits = std::conditional_t<sizeof(S) == 4, std::uint32_t, std::uint64_t>;
    constexpr bits exponent = sizeof(S) == 4 ? bits(0x7F800000u) : bits(0x7FF0000000000000u);
    bits found = 0;
    for (std::size_t i = 0; i < count; ++i) found |= bits((std::bit_cast<bits>(values[i]) & exponent) == exponent);
    return found == 0;
  } else {
    return std::all_of(values, values + count, [](S value) { return std::isfinite(value); });
  }
}

}  // namespace detail

/// Index of the first NaN or infinity, or the size when all scalars are finite.
template <ParameterSet P>
[[nodiscard]] std::size_t first_non_finite(const P& x) {
  const auto values = x.values();
  constexpr std::size_t block = 1024;  // a fixed trip count, so even -O2's vectorizer takes it
  std::size_t start = 0;
  for (; start + block <= values.size(); start += block)
    if (!detail::all_finite(values.data() + start, block)) break;
  for (auto i = start; i < values.size(); ++i)
    if (!std::isfinite(values[i])) return i;
  return values.size();
}

}  // namespace flotilla

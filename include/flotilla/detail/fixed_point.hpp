#pragma once
// Exact sums of weighted floating-point values, for the deterministic mean: each term w * x is
// rounded once to a multiple of 2^-64 and added to a 192-bit two's-complement integer. Integer
// addition is associative, so the sum has the same bits whatever the order, batching, threads or
// processes that add the terms. (The reproducible-summation idea of Demmel and Nguyen, 2015, in
// its simplest fixed-point form: 24 bytes per scalar instead of their binned floats.)
//
// Range: values with |x| < 2^40, integer weights 0 <= w <= 2^53 (double's exact integers), at
// most 2^23 terms per sum: a term stays below 2^157 units and a sum below 2^180, inside the 192
// bits. The caller checks all three. Resolution: 2^-64 (5.4e-20) per term, so float32 values
// above 2^-40 and float64 values above 2^-11 enter exactly; smaller ones are rounded to it.

#include <bit>
#include <concepts>
#include <cstdint>
#include <limits>
#include <type_traits>

namespace flotilla::detail {

__extension__ typedef unsigned __int128 uint128;  // __extension__: -Wpedantic knows it is not ISO C++

/// Fractional bits of the fixed-point format.
inline constexpr int fixed_fraction_bits = 64;
/// Values must stay below this magnitude; weights at most fixed_weight_limit.
inline constexpr double fixed_value_limit = 0x1p40;
inline constexpr double fixed_weight_limit = 0x1p53;
/// The most terms one sum may take.
inline constexpr std::uint64_t fixed_max_terms = std::uint64_t{1} << 23;
/// A term stays below 2^(this) units, so a merged sum of n terms has |high limb| < n * 2^29.
inline constexpr int fixed_term_bits = 157;

/// A 192-bit two's-complement integer counting units of 2^-64.
struct fixed_sum {
  std::uint64_t low = 0, middle = 0;
  std::int64_t high = 0;
};

/// a += b, modulo 2^192 (the range checks keep every sum far from wrapping).
inline void add_fixed(fixed_sum& a, const fixed_sum& b) {
  const uint128 old = (uint128(a.middle) << 64) | a.low;
  const uint128 added = old + ((uint128(b.middle) << 64) | b.low);
  a.low = std::uint64_t(added);
  a.middle = std::uint64_t(added >> 64);
  a.high = std::int64_t(std::uint64_t(a.high) + std::uint64_t(b.high) + (added < old ? 1u : 0u));
}

/// -a, modulo 2^192: invert the three limbs and add one.
[[nodiscard]] inline fixed_sum negated(const fixed_sum& a) {
  const uint128 low = ~((uint128(a.middle) << 64) | a.low) + 1;
  const auto high = ~std::uint64_t(a.high) + (low == 0 ? 1u : 0u);
  return {std::uint64_t(low), std::uint64_t(low >> 64), std::int64_t(high)};
}

/// w * x in units of 2^-64, rounded to nearest (ties away from zero). x finite, |x| < 2^40,
/// w <= 2^53.
template <std::floating_point S>
[[nodiscard]] inline fixed_sum to_fixed(S x, std::uint64_t w) {
  static_assert(std::numeric_limits<S>::is_iec559 && (sizeof(S) == 4 || sizeof(S) == 8));
  using bits_type = std::conditional_t<sizeof(S) == 4, std::uint32_t, std::uint64_t>;
  constexpr int mantissa_bits = std::numeric_limits<S>::digits - 1;  // 23 or 52
  constexpr int bias = std::numeric_limits<S>::max_exponent - 1;     // 127 or 1023
  constexpr int exponent_mask = 2 * std::numeric_limits<S>::max_exponent - 1;
  const auto bits = std::bit_cast<bits_type>(x);
  const int biased = int(bits >> mantissa_bits) & exponent_mask;
  std::uint64_t mantissa = bits & ((bits_type{1} << mantissa_bits) - 1);
  int exponent = 1 - bias - mantissa_bits;  // subnormals: mantissa * 2^(1 - bias - mantissa_bits)
  if (biased != 0) {
    mantissa |= std::uint64_t{1} << mantissa_bits;
    exponent = biased - bias - mantissa_bits;
  }
  const uint128 product = uint128(mantissa) * w;  // < 2^53 * 2^53
  const int shift = exponent + fixed_fraction_bits;  // < 128, since |x| < 2^40
  fixed_sum term;
  if (shift > 0) {  // product * 2^shift < 2^157: the bits shifted past 128 go to the high limb
    const uint128 low = product << shift;
    term = {std::uint64_t(low), std::uint64_t(low >> 64), std::int64_t(product >> (128 - shift))};
  } else if (shift > -128) {  // product < 2^106, so adding half a unit cannot overflow
    const uint128 low = shift == 0 ? product : (product + (uint128{1} << (-shift - 1))) >> -shift;
    term = {std::uint64_t(low), std::uint64_t(low >> 64), 0};
  }
  return (bits >> (8 * sizeof(S) - 1)) != 0 ? negated(term) : term;
}

/// The sum as a double (in units of 1, not 2^-64): the same bits for the same sum.
[[nodiscard]] inline double to_double(const fixed_sum& sum) {
  const bool negative = sum.high < 0;
  const fixed_sum magnitude_limbs = negative ? negated(sum) : sum;
  const uint128 low = (uint128(magnitude_limbs.middle) << 64) | magnitude_limbs.low;
  const auto high = std::uint64_t(magnitude_limbs.high);
  // With a high limb the low one adds at most 2^-64 of the value: two roundings stay within an ulp.
  const double magnitude = (high != 0 ? double(high) * 0x1p128 : 0.0) + double(low);
  return (negative ? -magnitude : magnitude) * 0x1p-64;
}

}  // namespace flotilla::detail

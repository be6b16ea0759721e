#pragma once
// 16-bit float formats for updates on the wire: IEEE 754 binary16 (float16: 5 exponent bits,
// 10 fraction bits) and bfloat16 (float32's 8 exponent bits, 7 fraction bits). Conversions from
// float round to nearest, ties to even, as the hardware does; infinities and NaNs are kept (a
// NaN stays a NaN), a float16 overflow becomes an infinity, and values below float16's smallest
// subnormal round to a signed zero. Written with integer operations only, so every platform
// gives the same bits.

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define FLOTILLA_HAS_F16C_PATH 1
#endif

namespace flotilla::compression {

/// The binary16 nearest `value`, ties to even.
[[nodiscard]] constexpr std::uint16_t to_float16(float value) {
  const auto bits = std::bit_cast<std::uint32_t>(value);
  const auto sign = static_cast<std::uint16_t>((bits >> 16) & 0x8000u);
  const std::uint32_t exponent = (bits >> 23) & 0xFFu;
  std::uint32_t fraction = bits & 0x7FFFFFu;
  if (exponent == 0xFF)  // infinity, or NaN made quiet so no payload bits can make it infinity
    return static_cast<std::uint16_t>(sign | 0x7C00u | (fraction != 0 ? 0x200u | (fraction >> 13) : 0u));
  const int rebased = int(exponent) - 127 + 15;
  if (rebased >= 0x1F) return static_cast<std::uint16_t>(sign | 0x7C00u);  // beyond the largest: infinity
  if (rebased <= 0) {  // a float16 subnormal, or zero
    if (rebased < -10) return sign;  // below half the smallest subnormal
    fraction |= 0x800000u;           // the implicit leading one
    const auto shift = static_cast<std::uint32_t>(14 - rebased);  // 14 to 24
    const std::uint32_t kept = fraction >> shift, rest = fraction & ((1u << shift) - 1), half = 1u << (shift - 1);
    const std::uint32_t rounded = kept + ((rest > half || (rest == half && (kept & 1u))) ? 1u : 0u);
    return static_cast<std::uint16_t>(sign | rounded);  // a carry makes it the smallest normal, rightly
  }
  const std::uint32_t kept = (std::uint32_t(rebased) << 10) | (fraction >> 13), rest = fraction & 0x1FFFu;
  // A carry out of the fraction raises the exponent, up to infinity: both are the right result.
  const std::uint32_t rounded = kept + ((rest > 0x1000u || (rest == 0x1000u && (kept & 1u))) ? 1u : 0u);
  return static_cast<std::uint16_t>(sign | rounded);
}

/// The float a binary16 stands for (exact: every binary16 is a float; a NaN comes back quiet).
[[nodiscard]] constexpr float from_float16(std::uint16_t half) {
  const std::uint32_t sign = std::uint32_t(half & 0x8000u) << 16;
  const std::uint32_t exponent = (half >> 10) & 0x1Fu;
  std::uint32_t fraction = half & 0x3FFu;
  if (exponent == 0x1F)  // an infinity, or a NaN made quiet (as the F16C instructions do)
    return std::bit_cast<float>(sign | 0x7F800000u | (fraction != 0 ? 0x400000u : 0u) | (fraction << 13));
  if (exponent != 0) return std::bit_cast<float>(sign | ((exponent - 15 + 127) << 23) | (fraction << 13));
  if (fraction == 0) return std::bit_cast<float>(sign);
  int shift = 0;  // a subnormal: normalize it
  while ((fraction & 0x400u) == 0) {
    fraction <<= 1;
    ++shift;
  }
  return std::bit_cast<float>(sign | (std::uint32_t(1 - 15 + 127 - shift) << 23) | ((fraction & 0x3FFu) << 13));
}

/// The bfloat16 nearest `value`, ties to even.
[[nodiscard]] constexpr std::uint16_t to_bfloat16(float value) {
  const auto bits = std::bit_cast<std::uint32_t>(value);
  if ((bits & 0x7F800000u) == 0x7F800000u && (bits & 0x7FFFFFu) != 0)  // NaN: keep it one, quietly
    return static_cast<std::uint16_t>((bits >> 16) | 0x40u);
  const std::uint32_t rounding = 0x7FFFu + ((bits >> 16) & 1u);
  return static_cast<std::uint16_t>((bits + rounding) >> 16);  // overflow rounds to infinity, rightly
}

/// The float a bfloat16 stands for (exact).
[[nodiscard]] constexpr float from_bfloat16(std::uint16_t value) { return std::bit_cast<float>(std::uint32_t(value) << 16); }

namespace detail {
#ifdef FLOTILLA_HAS_F16C_PATH
// The x86 F16C instructions (every x86-64 processor since 2012 or so) convert eight values at a
// time, rounding to nearest even as the functions above do; used when the processor has them.
inline bool has_f16c() {
  // F16C is CPUID leaf 1, ECX bit 29 (Clang's __builtin_cpu_supports does not name it); AVX's
  // check includes the operating system's support for its registers.
  static const bool present = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    return __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 29)) != 0 && __builtin_cpu_supports("avx");
  }();
  return present;
}
__attribute__((target("avx,f16c"))) inline std::size_t to_float16_f16c(const float* in, std::uint16_t* out, std::size_t n) {
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT));
  return i;
}
__attribute__((target("avx,f16c"))) inline std::size_t from_float16_f16c(const std::uint16_t* in, float* out, std::size_t n) {
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i))));
  return i;
}
#endif
}  // namespace detail

/// to_float16 of every value, the same bits, eight at a time where the processor can.
inline void convert_to_float16(std::span<const float> in, std::uint16_t* out) {
  std::size_t done = 0;
#ifdef FLOTILLA_HAS_F16C_PATH
  if (detail::has_f16c()) done = detail::to_float16_f16c(in.data(), out, in.size());
#endif
  for (std::size_t i = done; i < in.size(); ++i) out[i] = to_float16(in[i]);
}

/// from_float16 of every code, eight at a time where the processor can.
inline void convert_from_float16(const std::uint16_t* in, std::span<float> out) {
  std::size_t done = 0;
#ifdef FLOTILLA_HAS_F16C_PATH
  if (detail::has_f16c()) done = detail::from_float16_f16c(in, out.data(), out.size());
#endif
  for (std::size_t i = done; i < out.size(); ++i) out[i] = from_float16(in[i]);
}

/// to_bfloat16 of every value, in a loop the compiler vectorizes.
inline void convert_to_bfloat16(std::span<const float> in, std::uint16_t* out) {
  for (std::size_t i = 0; i < in.size(); ++i) {
    const auto bits = std::bit_cast<std::uint32_t>(in[i]);
    const bool nan = (bits & 0x7FFFFFFFu) > 0x7F800000u;
    const auto rounded = static_cast<std::uint16_t>((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
    out[i] = nan ? static_cast<std::uint16_t>((bits >> 16) | 0x40u) : rounded;
  }
}

}  // namespace flotilla::compression

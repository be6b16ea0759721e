#pragma once
// CRC32C (Castagnoli), the checksum of every TCP frame: a table-driven version for any CPU, the
// SSE4.2 instruction on three interleaved streams, and AVX-512 carry-less folding, chosen at run
// time by what the CPU has.

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>  // the SSE4.2 CRC32C instruction and AVX-512 carry-less multiplication
#define FLOTILLA_HAVE_X86_CRC32C 1
#endif

#include "flotilla/detail/config.hpp"

namespace flotilla::detail {

/// CRC32C (Castagnoli) of `bytes`, continuing from `crc` (0 to start): call it chunk by chunk
/// and get the same result as over the whole. Uses AVX-512 carry-less multiplication or the
/// SSE4.2 instruction when the CPU has them.
[[nodiscard]] FLOTILLA_DECL std::uint32_t crc32c(std::span<const std::byte> bytes, std::uint32_t crc = 0);
[[nodiscard]] FLOTILLA_DECL std::uint32_t crc32c_portable(std::uint32_t state, const unsigned char* data,
                                                          std::size_t size);

#if FLOTILLA_HEADER_DEFINITIONS

inline const std::array<std::uint32_t, 256>& crc32c_table() {
  static const auto table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;  // Castagnoli, reflected
      t[i] = c;
    }
    return t;
  }();
  return table;
}

FLOTILLA_DECL std::uint32_t crc32c_portable(std::uint32_t state, const unsigned char* data, std::size_t size) {
  const auto& table = crc32c_table();
  for (std::size_t i = 0; i < size; ++i) state = table[(state ^ data[i]) & 0xFF] ^ (state >> 8);
  return state;
}

#ifdef FLOTILLA_HAVE_X86_CRC32C
// The crc32 instruction has a latency of three cycles but can start one per cycle, so three
// independent streams over adjacent stripes run about three times faster than one. The stripes'
// results are joined with the CRC's linearity: crc(A || B) = shift_|B|(crc(A)) xor crc(B), where
// shifting by a fixed stripe length is a linear map on 32 bits, applied by four byte tables.
inline constexpr std::size_t crc_stripe = 8192;

inline const std::array<std::array<std::uint32_t, 256>, 4>& crc32c_stripe_shift() {
  static const auto tables = [] {
    // Column i: where bit i of the register ends up after `crc_stripe` zero bytes.
    std::array<std::uint32_t, 32> column{};
    const auto& table = crc32c_table();
    for (int bit = 0; bit < 32; ++bit) {
      std::uint32_t state = std::uint32_t{1} << bit;
      for (std::size_t i = 0; i < crc_stripe; ++i) state = table[state & 0xFF] ^ (state >> 8);
      column[static_cast<std::size_t>(bit)] = state;
    }
    std::array<std::array<std::uint32_t, 256>, 4> shift{};
    for (std::size_t part = 0; part < 4; ++part)
      for (std::uint32_t value = 0; value < 256; ++value)
        for (int bit = 0; bit < 8; ++bit)
          if (value & (1u << bit)) shift[part][value] ^= column[8 * part + static_cast<std::size_t>(bit)];
    return shift;
  }();
  return tables;
}

inline std::uint32_t crc32c_shift_stripe(std::uint32_t state) {
  const auto& shift = crc32c_stripe_shift();
  return shift[0][state & 0xFF] ^ shift[1][(state >> 8) & 0xFF] ^ shift[2][(state >> 16) & 0xFF] ^ shift[3][state >> 24];
}

__attribute__((target("sse4.2"))) inline std::uint32_t crc32c_sse42(std::uint32_t state, const unsigned char* data,
                                                                    std::size_t size) {
  const auto word = [](const unsigned char* at) {
    std::uint64_t value;
    std::memcpy(&value, at, 8);
    return value;
  };
  for (; size >= 3 * crc_stripe; size -= 3 * crc_stripe, data += 3 * crc_stripe) {
    std::uint64_t a = state, b = 0, c = 0;
    for (std::size_t i = 0; i < crc_stripe; i += 8) {
      a = _mm_crc32_u64(a, word(data + i));
      b = _mm_crc32_u64(b, word(data + crc_stripe + i));
      c = _mm_crc32_u64(c, word(data + 2 * crc_stripe + i));
    }
    state = crc32c_shift_stripe(crc32c_shift_stripe(static_cast<std::uint32_t>(a)) ^ static_cast<std::uint32_t>(b)) ^
            static_cast<std::uint32_t>(c);
  }
  std::uint64_t wide = state;
  for (; size >= 8; size -= 8, data += 8) wide = _mm_crc32_u64(wide, word(data));
  auto narrow = static_cast<std::uint32_t>(wide);
  for (; size > 0; --size, ++data) narrow = _mm_crc32_u8(narrow, *data);
  return narrow;
}

// Faster still on CPUs with AVX-512 carry-less multiplication: folding, after Intel's "Fast CRC
// Computation for Generic Polynomials Using PCLMULQDQ". In the CRC's bit-reflected order a
// 128-bit lane's low half H holds its high-degree coefficients, so a lane L = H x^64 + G followed
// by T more message bits contributes L x^T = H x^(T+64) + G x^T (mod P). A carry-less product of
// two 64-bit reflected values carries one extra factor x, hence the constants x^(T+63) and
// x^(T-1) mod P: two products move a lane T bits on, where it is xored into the data found there.
// Four 512-bit accumulators (16 lanes) move 256 bytes a step; at the end they fold into one lane,
// whose CRC the crc32 instruction finishes.
constexpr std::uint64_t crc32c_x_power_reflected(unsigned exponent) {
  std::uint64_t remainder = 1;  // x^0, bit i standing for x^i
  for (unsigned i = 0; i < exponent; ++i) {
    remainder <<= 1;
    if (remainder >> 32) remainder ^= 0x11EDC6F41;  // CRC32C's polynomial P
  }
  std::uint64_t reflected = 0;  // bit 63 - i standing for x^i
  for (int i = 0; i < 32; ++i)
    if ((remainder >> i) & 1) reflected |= std::uint64_t{1} << (63 - i);
  return reflected;
}

#define FLOTILLA_CRC_FOLD_TARGET __attribute__((target("avx512f,vpclmulqdq,pclmul,sse4.2")))

FLOTILLA_CRC_FOLD_TARGET inline __m128i crc32c_fold_constants(unsigned bits) {
  return _mm_set_epi64x(static_cast<long long>(crc32c_x_power_reflected(bits - 1)),
                        static_cast<long long>(crc32c_x_power_reflected(bits + 63)));
}
// The same constants in each of a 512-bit register's four lanes. (Set, not broadcast: GCC 12's
// broadcast and extract intrinsics trip -Wuninitialized inside its own headers.)
FLOTILLA_CRC_FOLD_TARGET inline __m512i crc32c_fold_constants_x4(unsigned bits) {
  const auto low = static_cast<long long>(crc32c_x_power_reflected(bits + 63));
  const auto high = static_cast<long long>(crc32c_x_power_reflected(bits - 1));
  return _mm512_set_epi64(high, low, high, low, high, low, high, low);
}
FLOTILLA_CRC_FOLD_TARGET inline __m128i crc32c_fold(__m128i lane, __m128i constants) {
  return _mm_xor_si128(_mm_clmulepi64_si128(lane, constants, 0x00), _mm_clmulepi64_si128(lane, constants, 0x11));
}
FLOTILLA_CRC_FOLD_TARGET inline __m512i crc32c_fold(__m512i lanes, __m512i constants) {
  return _mm512_xor_si512(_mm512_clmulepi64_epi128(lanes, constants, 0x00),
                          _mm512_clmulepi64_epi128(lanes, constants, 0x11));
}
FLOTILLA_CRC_FOLD_TARGET inline __m512i crc32c_load(const unsigned char* at) { return _mm512_loadu_si512(at); }

/// @pre size >= 256
FLOTILLA_CRC_FOLD_TARGET inline std::uint32_t crc32c_folding(std::uint32_t state, const unsigned char* data,
                                                             std::size_t size) {
  // The register's state joins the message's first four bytes.
  __m512i a = _mm512_xor_si512(crc32c_load(data), _mm512_zextsi128_si512(_mm_cvtsi32_si128(static_cast<int>(state))));
  __m512i b = crc32c_load(data + 64), c = crc32c_load(data + 128), d = crc32c_load(data + 192);
  data += 256;
  size -= 256;
  const __m512i by_256_bytes = crc32c_fold_constants_x4(2048);
  const __m512i by_64_bytes = crc32c_fold_constants_x4(512);
  for (; size >= 256; size -= 256, data += 256) {
    a = _mm512_xor_si512(crc32c_fold(a, by_256_bytes), crc32c_load(data));
    b = _mm512_xor_si512(crc32c_fold(b, by_256_bytes), crc32c_load(data + 64));
    c = _mm512_xor_si512(crc32c_fold(c, by_256_bytes), crc32c_load(data + 128));
    d = _mm512_xor_si512(crc32c_fold(d, by_256_bytes), crc32c_load(data + 192));
  }
  __m512i all = _mm512_xor_si512(crc32c_fold(a, by_64_bytes), b);
  all = _mm512_xor_si512(crc32c_fold(all, by_64_bytes), c);
  all = _mm512_xor_si512(crc32c_fold(all, by_64_bytes), d);
  for (; size >= 64; size -= 64, data += 64) all = _mm512_xor_si512(crc32c_fold(all, by_64_bytes), crc32c_load(data));
  const __m128i by_16_bytes = crc32c_fold_constants(128);
  __m128i lanes[4];
  _mm512_storeu_si512(lanes, all);
  __m128i lane = lanes[0];
  for (int i = 1; i < 4; ++i) lane = _mm_xor_si128(crc32c_fold(lane, by_16_bytes), lanes[i]);
  for (; size >= 16; size -= 16, data += 16)
    lane = _mm_xor_si128(crc32c_fold(lane, by_16_bytes), _mm_loadu_si128(reinterpret_cast<const __m128i*>(data)));
  // The last lane's CRC from a zero register, then the remaining bytes.
  std::uint64_t wide = _mm_crc32_u64(0, static_cast<std::uint64_t>(_mm_cvtsi128_si64(lane)));
  wide = _mm_crc32_u64(wide, static_cast<std::uint64_t>(_mm_extract_epi64(lane, 1)));
  return crc32c_sse42(static_cast<std::uint32_t>(wide), data, size);
}
#undef FLOTILLA_CRC_FOLD_TARGET
#endif

FLOTILLA_DECL std::uint32_t crc32c(std::span<const std::byte> bytes, std::uint32_t crc) {
  const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
  std::uint32_t state = ~crc;
#ifdef FLOTILLA_HAVE_X86_CRC32C
  static const bool folding = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("vpclmulqdq") &&
                              __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.2");
  if (folding && bytes.size() >= 256) return ~crc32c_folding(state, data, bytes.size());
  static const bool hardware = __builtin_cpu_supports("sse4.2");
  if (hardware) return ~crc32c_sse42(state, data, bytes.size());
#endif
  return ~crc32c_portable(state, data, bytes.size());
}

#endif  // FLOTILLA_HEADER_DEFINITIONS

}  // namespace flotilla::detail

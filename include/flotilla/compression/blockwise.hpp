#pragma once
// Blockwise quantization of updates to 8 or 4 bits (as QSGD-style codecs and NVIDIA FLARE's
// quantizers do): each block of values keeps its largest magnitude s as a float32 scale, and each
// value x becomes an integer q in [-L, L] (L = 127 for 8 bits, 7 for 4 bits), rounded
// stochastically so that the expected decoded value is x itself; x is decoded as q s / L, never
// further from x than one step s / L (the draw has 24 bits, so the expectation is exact to 2^-24
// of a step). Layout: all blocks' scales first (4 bytes each, little-
// endian), then the integers (one byte each, or two to a byte for 4 bits, low nibble first).

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>

#include "flotilla/errors.hpp"

namespace flotilla::compression {

/// A blockwise format: bits per value (8 or 4) and values per block.
struct blockwise_format {
  unsigned bits = 8;
  std::size_t block = 256;

  /// @throws configuration_error unless bits is 8 or 4 and the block holds 2 to 2^20 values.
  void validate() const {
    if (bits != 8 && bits != 4) throw configuration_error("blockwise quantization has 8 or 4 bits; got " + std::to_string(bits));
    if (block < 2 || block > (std::size_t{1} << 20))
      throw configuration_error("a block holds 2 to 2^20 values; got " + std::to_string(block));
  }
  /// The largest integer a value becomes: 127 or 7.
  [[nodiscard]] int levels() const { return bits == 8 ? 127 : 7; }
  [[nodiscard]] std::size_t blocks(std::size_t values) const { return (values + block - 1) / block; }
  /// Bytes of `values` values encoded.
  [[nodiscard]] std::size_t encoded_size(std::size_t values) const {
    return 4 * blocks(values) + (bits == 8 ? values : (values + 1) / 2);
  }
};

namespace detail {
inline void store_scale(std::uint8_t* out, float scale) {
  const auto bits = std::bit_cast<std::uint32_t>(scale);
  for (int byte = 0; byte < 4; ++byte) out[byte] = std::uint8_t(bits >> (8 * byte));
}
inline float load_scale(const std::uint8_t* in) {
  std::uint32_t bits = 0;
  for (int byte = 0; byte < 4; ++byte) bits |= std::uint32_t(in[byte]) << (8 * byte);
  return std::bit_cast<float>(bits);
}
inline int code_at(const std::uint8_t* codes, unsigned bits, std::size_t at) {
  if (bits == 8) return std::int8_t(codes[at]);
  const int nibble = (at & 1) ? codes[at / 2] >> 4 : codes[at / 2] & 0xF;
  return nibble >= 8 ? nibble - 16 : nibble;
}
}  // namespace detail

namespace detail {
// Chris Wellons' "lowbias32" integer hash (hash-prospector): a bijection on 32-bit words whose
// output bits pass for independent, in a loop the compiler vectorizes. Stochastic rounding needs
// independence, not secrecy; value i of a message draws hash(key + i), so any split of the work
// across threads gives the same bytes.
constexpr std::uint32_t lowbias32(std::uint32_t x) {
  x ^= x >> 16;
  x *= 0x7FEB352Du;
  x ^= x >> 15;
  x *= 0x846CA68Bu;
  x ^= x >> 16;
  return x;
}

// Encodes blocks [first, last) of `values` into `out` (the whole encoding's bytes); returns the
// index of a non-finite value, or SIZE_MAX. The floor of x L / s comes from a truncating
// conversion (floor() is a library call on baseline x86-64), and a draw against its fraction
// rounds it up.
inline std::size_t encode_blocks(std::span<const float> values, const blockwise_format& format, std::span<std::uint8_t> out,
                                 std::size_t first, std::size_t last, std::uint64_t seed) {
  const std::size_t blocks = format.blocks(values.size());
  std::uint8_t* codes = out.data() + 4 * blocks;
  const float levels = float(format.levels());
  const auto key = std::uint32_t(seed ^ (seed >> 32));
  std::int8_t q[256];  // a block's integers, a slice at a time
  for (std::size_t b = first; b < last; ++b) {
    const std::size_t begin = b * format.block, end = std::min(values.size(), begin + format.block);
    // The largest magnitude as the largest bit pattern without the sign (an integer maximum
    // vectorizes where a float one may not): at or above an infinity's, some value is not finite.
    std::uint32_t largest_bits = 0;
    for (std::size_t i = begin; i < end; ++i) largest_bits = std::max(largest_bits, std::bit_cast<std::uint32_t>(values[i]) & 0x7FFFFFFFu);
    if (largest_bits >= 0x7F800000u)
      for (std::size_t i = begin; i < end; ++i)
        if (!std::isfinite(values[i])) return i;
    const float largest = std::bit_cast<float>(largest_bits);
    store_scale(out.data() + 4 * b, largest);
    // Scaled by a division, not a reciprocal, so the largest lands on L exactly.
    const float to_levels = largest > 0 ? levels / largest : 0.0f;
    for (std::size_t slice = begin; slice < end; slice += 256) {
      const std::size_t n = std::min<std::size_t>(256, end - slice);
      const float* x = values.data() + slice;
      const auto counter = key + std::uint32_t(slice);
      for (std::size_t j = 0; j < n; ++j) {
        const float scaled = std::min(levels, std::max(-levels, x[j] * to_levels));
        const int truncated = int(scaled);
        const int below = truncated - (scaled < float(truncated) ? 1 : 0);
        const float uniform = float(lowbias32(counter + std::uint32_t(j)) >> 8) * 0x1.0p-24f;  // 24 bits: [0, 1)
        q[j] = std::int8_t(below + (uniform < scaled - float(below) ? 1 : 0));
      }
      if (format.bits == 8) {
        std::memcpy(codes + slice, q, n);
      } else if (slice % 2 == 0) {  // two to a byte, low nibble first, as 4-bit two's complement
        std::uint8_t* packed = codes + slice / 2;
        for (std::size_t j = 0; j + 1 < n; j += 2) packed[j / 2] = std::uint8_t((q[j] & 0xF) | ((q[j + 1] & 0xF) << 4));
        if (n % 2) packed[n / 2] = std::uint8_t(q[n - 1] & 0xF);  // the high half stays zero
      } else {  // an odd block size: the slice starts in the high half of a byte
        for (std::size_t j = 0; j < n; ++j) {
          const std::size_t at = slice + j;
          const auto nibble = std::uint8_t(q[j] & 0xF);
          codes[at / 2] = (at & 1) ? std::uint8_t((codes[at / 2] & 0x0F) | (nibble << 4)) : nibble;
        }
      }
    }
  }
  return SIZE_MAX;
}
}  // namespace detail

/// @brief Encodes `values` into `out` (format.encoded_size(values.size()) bytes); `seed` drives
/// the stochastic rounding (detail::lowbias32). @throws task_error for a non-finite value,
/// layout_error for an output of another size.
inline void encode_blockwise(std::span<const float> values, const blockwise_format& format, std::span<std::uint8_t> out,
                             std::uint64_t seed) {
  format.validate();
  if (out.size() != format.encoded_size(values.size()))
    throw layout_error("encode_blockwise: the output holds " + std::to_string(out.size()) + " bytes, not " +
                       std::to_string(format.encoded_size(values.size())));
  const auto bad = detail::encode_blocks(values, format, out, 0, format.blocks(values.size()), seed);
  if (bad != SIZE_MAX) throw task_error("the update holds a non-finite value at index " + std::to_string(bad));
}

/// @brief Why `in` cannot be the encoding of `count` values in `format`, or nothing: a size other
/// than the format's, a scale that is negative or not finite, or an integer beyond [-L, L].
[[nodiscard]] inline std::optional<std::string> check_blockwise(std::span<const std::uint8_t> in, const blockwise_format& format,
                                                                std::size_t count) {
  if (in.size() != format.encoded_size(count))
    return "a blockwise payload of " + std::to_string(in.size()) + " bytes for " + std::to_string(count) + " values; " +
           std::to_string(format.encoded_size(count)) + " were expected";
  const std::size_t blocks = format.blocks(count);
  for (std::size_t b = 0; b < blocks; ++b) {
    const float scale = detail::load_scale(in.data() + 4 * b);
    if (!(scale >= 0) || !std::isfinite(scale))
      return "block " + std::to_string(b) + " has the scale " + std::to_string(scale) + "; a scale is finite and not negative";
  }
  // Only -128 (8 bits) and -8 (4 bits) lie beyond the range.
  const std::uint8_t* codes = in.data() + 4 * blocks;
  const int levels = format.levels();
  for (std::size_t at = 0; at < count; ++at) {
    const int q = detail::code_at(codes, format.bits, at);
    if (q < -levels) return "value " + std::to_string(at) + " is coded as " + std::to_string(q) + "; the codes run from " +
                            std::to_string(-levels) + " to " + std::to_string(levels);
  }
  if (format.bits == 4 && count % 2 == 1 && (codes[count / 2] >> 4) != 0) return "the unused last half-byte is not zero";
  return std::nullopt;
}

/// @brief Adds `weight` times values `begin` to `begin + out.size()` of a checked encoding of
/// `count` values to `out`: a fold decodes a slice at a time, never the whole update.
inline void add_blockwise(std::span<const std::uint8_t> in, const blockwise_format& format, std::size_t count,
                          std::size_t begin, std::span<float> out, float weight) {
  const std::uint8_t* codes = in.data() + 4 * format.blocks(count);
  const float levels = float(format.levels());
  for (std::size_t at = begin, end = begin + out.size(); at < end;) {
    const std::size_t b = at / format.block, stop = std::min(end, (b + 1) * format.block);
    const float step = detail::load_scale(in.data() + 4 * b) * weight / levels;  // in this order: exact on the grid
    float* target = out.data() + (at - begin);
    if (format.bits == 8) {
      const auto* q = reinterpret_cast<const std::int8_t*>(codes) + at;
      for (std::size_t i = 0; i < stop - at; ++i) target[i] += float(q[i]) * step;
    } else {
      std::size_t i = at;
      if (i & 1) {  // the high half of a byte first
        target[0] += float(detail::code_at(codes, 4, i)) * step;
        ++i;
      }
      for (; i + 1 < stop; i += 2) {  // a whole byte: sign-extend each nibble
        const std::uint8_t byte = codes[i / 2];
        target[i - at] += float(std::int8_t(std::uint8_t(byte << 4)) >> 4) * step;
        target[i + 1 - at] += float(std::int8_t(byte) >> 4) * step;
      }
      if (i < stop) target[i - at] += float(detail::code_at(codes, 4, i)) * step;
    }
    at = stop;
  }
}

/// @brief Decodes what encode_blockwise wrote into `out`.
/// @throws decode_error with check_blockwise's reason.
inline void decode_blockwise(std::span<const std::uint8_t> in, const blockwise_format& format, std::span<float> out) {
  format.validate();
  if (auto problem = check_blockwise(in, format, out.size())) throw decode_error(*problem);
  std::fill(out.begin(), out.end(), 0.0f);
  add_blockwise(in, format, out.size(), 0, out, 1.0f);
}

}  // namespace flotilla::compression

#pragma once
// Blockwise quantization of updates to 8 or 4 bits (as QSGD-style codecs and NVIDIA FLARE's
// quantizers do): each block of values keeps its largest magnitude s as a float32 scale, and each
// value x becomes an integer q in [-L, L] (L = 127 for 8 bits, 7 for 4 bits), rounded
// stochastically so that the expected decoded value is x itself; x is decoded as q s / L, never
// further from x than one step s / L. Layout: all blocks' scales first (4 bytes each, little-
// endian), then the integers (one byte each, or two to a byte for 4 bits, low nibble first).

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>

#include "flotilla/errors.hpp"

namespace flotilla::compression {

/// A blockwise format: bits per value (8 or 4) and values per block.
struct blockwise_format {
  unsigned bits = 8;
  std::size_t block = 64;

  /// @throws configuration_error unless bits is 8 or 4 and the block holds 2 to 2^20 values.
  void validate() const {
    if (bits != 8 && bits != 4) throw configuration_error("blockwise quantization has 8 or 4 bits; got " + std::to_string(bits));
    if (block < 2 || block > (std::size_t{1} << 20))
      throw configuration_error("a block holds 2 to 2^20 values; got " + std::to_string(block));
  }
  /// The largest integer a value becomes: 127 or 7.
  [[nodiscard]] int levels() const { return bits == 8 ? 127 : 7; }
  /// Bytes of `values` values encoded.
  [[nodiscard]] std::size_t encoded_size(std::size_t values) const {
    const std::size_t blocks = (values + block - 1) / block;
    return 4 * blocks + (bits == 8 ? values : (values + 1) / 2);
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
}  // namespace detail

/// @brief Encodes `values` into `out` (format.encoded_size(values.size()) bytes). `bits()`
/// returns uniform 64-bit words (a flotilla::random_engine will do: the rounding needs no
/// secrecy, only independence). @throws task_error for a non-finite value, layout_error for an
/// output of another size.
template <class Bits>
void encode_blockwise(std::span<const float> values, const blockwise_format& format, std::span<std::uint8_t> out, Bits& bits) {
  format.validate();
  if (out.size() != format.encoded_size(values.size()))
    throw layout_error("encode_blockwise: the output holds " + std::to_string(out.size()) + " bytes, not " +
                       std::to_string(format.encoded_size(values.size())));
  const std::size_t blocks = (values.size() + format.block - 1) / format.block;
  std::uint8_t* codes = out.data() + 4 * blocks;
  const double levels = format.levels();
  std::uint64_t word = 0;
  for (std::size_t b = 0; b < blocks; ++b) {
    const auto block = values.subspan(b * format.block, std::min(format.block, values.size() - b * format.block));
    float largest = 0;
    for (std::size_t i = 0; i < block.size(); ++i) {
      if (!std::isfinite(block[i]))
        throw task_error("the update holds a non-finite value at index " + std::to_string(b * format.block + i));
      largest = std::max(largest, std::abs(block[i]));
    }
    detail::store_scale(out.data() + 4 * b, largest);
    const double to_levels = largest > 0 ? levels / double(largest) : 0;
    for (std::size_t i = 0; i < block.size(); ++i) {
      const double scaled = double(block[i]) * to_levels;  // in [-L, L]
      const double below = std::floor(scaled);
      if ((i & 1) == 0) word = bits();
      const double uniform = double(std::uint32_t(word >> (32 * (i & 1)))) * 0x1.0p-32;
      const int q = std::clamp(int(below) + (uniform < scaled - below ? 1 : 0), -int(levels), int(levels));
      const std::size_t at = b * format.block + i;
      if (format.bits == 8) {
        codes[at] = std::uint8_t(std::int8_t(q));
      } else {  // two to a byte, low nibble first, as 4-bit two's complement
        const auto nibble = std::uint8_t(q & 0xF);
        codes[at / 2] = (at & 1) ? std::uint8_t((codes[at / 2] & 0x0F) | (nibble << 4)) : nibble;
      }
    }
  }
}

/// @brief Decodes what encode_blockwise wrote into `out`.
/// @throws decode_error naming what is wrong: a size other than the format's for out.size()
///   values, a scale that is negative or not finite, or an integer beyond [-L, L].
inline void decode_blockwise(std::span<const std::uint8_t> in, const blockwise_format& format, std::span<float> out) {
  format.validate();
  if (in.size() != format.encoded_size(out.size()))
    throw decode_error("a blockwise payload of " + std::to_string(in.size()) + " bytes for " + std::to_string(out.size()) +
                       " values; " + std::to_string(format.encoded_size(out.size())) + " were expected");
  const std::size_t blocks = (out.size() + format.block - 1) / format.block;
  const std::uint8_t* codes = in.data() + 4 * blocks;
  const int levels = format.levels();
  for (std::size_t b = 0; b < blocks; ++b) {
    const float scale = detail::load_scale(in.data() + 4 * b);
    if (!(scale >= 0) || !std::isfinite(scale))
      throw decode_error("block " + std::to_string(b) + " has the scale " + std::to_string(scale) +
                         "; a scale is finite and not negative");
    const double step = double(scale) / levels;
    const std::size_t end = std::min(out.size(), (b + 1) * format.block);
    for (std::size_t at = b * format.block; at < end; ++at) {
      int q = 0;
      if (format.bits == 8) {
        q = std::int8_t(codes[at]);
      } else {
        const int nibble = (at & 1) ? codes[at / 2] >> 4 : codes[at / 2] & 0xF;
        q = nibble >= 8 ? nibble - 16 : nibble;
      }
      if (q < -levels || q > levels)
        throw decode_error("value " + std::to_string(at) + " is coded as " + std::to_string(q) + "; the codes run from " +
                           std::to_string(-levels) + " to " + std::to_string(levels));
      out[at] = static_cast<float>(q * step);
    }
  }
}

}  // namespace flotilla::compression

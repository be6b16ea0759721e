#pragma once
// What a learner sends under secure aggregation: its update, clipped to a range and quantized to
// integers modulo 2^b with stochastic rounding (unbiased), plus its masks: a self mask and, for
// each neighbour, a pairwise mask added by one side and subtracted by the other, so that they
// cancel in the sum. Masks are AES-256-CTR keystreams of 32-byte seeds (crypto.hpp), streamed
// block by block so no model-sized mask is ever held. Defaults are Flower's SecAgg+ settings.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>

#include "flotilla/algorithms/privacy/noise.hpp"
#include "flotilla/algorithms/secure_aggregation/crypto.hpp"
#include "flotilla/detail/text.hpp"
#include "flotilla/errors.hpp"

namespace flotilla::secure_aggregation {

/// How updates become integers: values clipped to [-clipping_range, clipping_range] map onto
/// [0, quantization_range - 1], and sums are taken modulo 2^modulus_bits.
struct quantization {
  double clipping_range = 8;
  std::uint64_t quantization_range = std::uint64_t{1} << 22;
  unsigned modulus_bits = 32;

  /// @throws configuration_error naming the values when the sum of `learners` quantized values,
  ///   each with discrete Gaussian noise of `noise_stddev` steps (ten standard deviations of
  ///   their sum either way), could wrap around the modulus, or a setting is out of its domain.
  void validate(std::size_t learners, double noise_stddev = 0) const {
    if (!(clipping_range > 0) || !std::isfinite(clipping_range))
      throw configuration_error("clipping_range must be positive; got " + flotilla::detail::number(clipping_range));
    if (modulus_bits < 2 || modulus_bits > 32)
      throw configuration_error("modulus_bits must be in [2, 32]; got " + std::to_string(modulus_bits));
    if (quantization_range < 2 || quantization_range > (std::uint64_t{1} << 32))
      throw configuration_error("quantization_range must be in [2, 2^32]; got " + std::to_string(quantization_range));
    const auto tail = 10.0L * static_cast<long double>(noise_stddev) * std::sqrt(static_cast<long double>(learners));
    const auto largest_sum = static_cast<long double>(learners) * static_cast<long double>(quantization_range - 1) + 2 * tail;
    if (largest_sum >= std::ldexp(1.0L, int(modulus_bits)))
      throw configuration_error("the sum of " + std::to_string(learners) + " values quantized to [0, " +
                                std::to_string(quantization_range - 1) + "]" +
                                (noise_stddev > 0 ? " with their noise" : "") + " overflows the modulus 2^" +
                                std::to_string(modulus_bits) + "; lower quantization_range or raise modulus_bits");
  }
  [[nodiscard]] std::uint32_t modulus_mask() const {
    return modulus_bits == 32 ? 0xFFFFFFFFu : (std::uint32_t{1} << modulus_bits) - 1;
  }
  /// The width of one quantization step.
  [[nodiscard]] double step() const { return 2 * clipping_range / double(quantization_range - 1); }
};

/// @brief Clips each value to the range and rounds it stochastically to a step: up with
/// probability equal to the fraction passed (to 32 bits), so the expected result is the clipped
/// value.
template <class Scalar, privacy::NoiseSource R>
void quantize(std::span<const Scalar> values, const quantization& q, std::span<std::uint32_t> out, R source) {
  if (values.size() != out.size()) throw layout_error("quantize: the output holds another number of values");
  privacy::word_stream<R> bits(std::move(source));
  const double top = double(q.quantization_range - 1), scale = 1 / q.step();
  std::uint64_t word = 0;
  for (std::size_t i = 0; i < values.size(); ++i) {
    const double value = double(values[i]);
    if (!std::isfinite(value)) throw task_error("the update holds a non-finite value at index " + std::to_string(i));
    const double clipped = value < -q.clipping_range ? -q.clipping_range : value > q.clipping_range ? q.clipping_range : value;
    const double scaled = (clipped + q.clipping_range) * scale;
    const double position = scaled < top ? scaled : top;  // in [0, top]
    const double below = double(std::int64_t(position));  // floor: position is not negative
    // 32 random bits per value (two per word): a bias below 2^-32 of a step.
    if (i % 2 == 0) word = bits();
    const double uniform = double(std::uint32_t(word >> (32 * (i % 2)))) * 0x1.0p-32;
    out[i] = std::uint32_t(below) + (uniform < position - below ? 1u : 0u);
  }
}

/// The sum of `learners` quantized vectors back in the values' scale: each value counts its
/// steps from -clipping_range. The sum is read modulo 2^modulus_bits around its middle
/// (learners times half the range), so noise that took it below zero or past the modulus comes
/// back whole; validate() keeps it within half the modulus of that middle.
template <class Scalar>
void dequantize_sum(std::span<const std::uint32_t> sum, std::size_t learners, const quantization& q, std::span<Scalar> out) {
  if (sum.size() != out.size()) throw layout_error("dequantize_sum: the output holds another number of values");
  const std::uint64_t modulus = std::uint64_t{1} << q.modulus_bits;
  const std::uint64_t middle = learners * (q.quantization_range - 1) / 2;
  const double offset = double(learners) * q.clipping_range, step = q.step();
  for (std::size_t i = 0; i < sum.size(); ++i) {
    const std::uint64_t from_middle = (std::uint64_t(sum[i]) + modulus - middle % modulus) % modulus;
    const std::int64_t centred = from_middle >= modulus / 2 ? std::int64_t(from_middle) - std::int64_t(modulus) : std::int64_t(from_middle);
    out[i] = static_cast<Scalar>(double(std::int64_t(middle) + centred) * step - offset);
  }
}

/// Whether a mask is added (self mask; pairwise mask with a higher neighbour) or subtracted
/// (pairwise mask with a lower neighbour).
enum class mask_sign : std::uint8_t { add, subtract };

/// One mask to apply: its seed and whether it is added or subtracted.
struct mask_term {
  key_bytes seed{};
  mask_sign sign = mask_sign::add;
};

/// @brief Applies every mask in `terms` to `vector`, modulo 2^modulus_bits, 16 KiB of the vector
/// at a time: each piece stays in cache while all the masks' keystreams for it are added, so the
/// vector is read and written once, whatever the number of masks.
inline void apply_masks(std::span<std::uint32_t> vector, std::span<const mask_term> terms, std::uint32_t modulus_mask) {
  constexpr std::size_t piece = 4096;
  static const std::array<std::uint8_t, piece * sizeof(std::uint32_t)> zeros{};
  std::vector<detail::cipher_context> streams;
  streams.reserve(terms.size());
  const std::array<std::uint8_t, 16> counter{};
  for (const auto& term : terms) {
    streams.push_back(detail::new_cipher_context());
    detail::require(EVP_EncryptInit_ex(streams.back().get(), EVP_aes_256_ctr(), nullptr, term.seed.data(), counter.data()),
                    "starting AES-256-CTR");
  }
  std::array<std::uint32_t, piece> mask{};
  for (std::size_t first = 0; first < vector.size(); first += piece) {
    const std::size_t count = std::min(piece, vector.size() - first);
    std::uint32_t* out = vector.data() + first;
    for (std::size_t t = 0; t < terms.size(); ++t) {
      int length = 0;
      detail::require(EVP_EncryptUpdate(streams[t].get(), reinterpret_cast<std::uint8_t*>(mask.data()), &length, zeros.data(),
                                        int(count * sizeof(std::uint32_t))),
                      "expanding a mask");
      if (terms[t].sign == mask_sign::add)
        for (std::size_t i = 0; i < count; ++i) out[i] += mask[i];
      else
        for (std::size_t i = 0; i < count; ++i) out[i] -= mask[i];
    }
    if (modulus_mask != 0xFFFFFFFFu)  // 2^32 wraps by itself
      for (std::size_t i = 0; i < count; ++i) out[i] &= modulus_mask;
  }
}

/// Adds or subtracts the mask of one seed (apply_masks with one term).
inline void apply_mask(std::span<std::uint32_t> vector, const key_bytes& seed, mask_sign sign, std::uint32_t modulus_mask) {
  const mask_term term{seed, sign};
  apply_masks(vector, std::span(&term, 1), modulus_mask);
}

}  // namespace flotilla::secure_aggregation

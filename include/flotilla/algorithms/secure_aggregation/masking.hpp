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

  /// @throws configuration_error naming the values when the sum of `learners` quantized values
  ///   could wrap around the modulus, or a setting is out of its domain.
  void validate(std::size_t learners) const {
    if (!(clipping_range > 0) || !std::isfinite(clipping_range))
      throw configuration_error("clipping_range must be positive; got " + flotilla::detail::number(clipping_range));
    if (modulus_bits < 2 || modulus_bits > 32)
      throw configuration_error("modulus_bits must be in [2, 32]; got " + std::to_string(modulus_bits));
    if (quantization_range < 2) throw configuration_error("quantization_range must be at least 2");
    const auto largest_sum = static_cast<long double>(learners) * static_cast<long double>(quantization_range - 1);
    if (largest_sum >= std::ldexp(1.0L, int(modulus_bits)))
      throw configuration_error("the sum of " + std::to_string(learners) + " values quantized to [0, " +
                                std::to_string(quantization_range - 1) + "] overflows the modulus 2^" +
                                std::to_string(modulus_bits) + "; lower quantization_range or raise modulus_bits");
  }
  [[nodiscard]] std::uint32_t modulus_mask() const {
    return modulus_bits == 32 ? 0xFFFFFFFFu : (std::uint32_t{1} << modulus_bits) - 1;
  }
  /// The width of one quantization step.
  [[nodiscard]] double step() const { return 2 * clipping_range / double(quantization_range - 1); }
};

/// @brief Clips each value to the range and rounds it stochastically to a step: up with
/// probability equal to the fraction passed, so the expected result is the clipped value.
template <class Scalar, privacy::NoiseSource R>
void quantize(std::span<const Scalar> values, const quantization& q, std::span<std::uint32_t> out, R source) {
  if (values.size() != out.size()) throw layout_error("quantize: the output holds another number of values");
  privacy::word_stream<R> bits(std::move(source));
  const double top = double(q.quantization_range - 1), scale = 1 / q.step();
  for (std::size_t i = 0; i < values.size(); ++i) {
    const double clipped = std::fmin(std::fmax(double(values[i]), -q.clipping_range), q.clipping_range);
    const double position = std::fmin((clipped + q.clipping_range) * scale, top);  // in [0, top]
    const double below = std::floor(position);
    out[i] = std::uint32_t(below) + (bits.unit() < position - below ? 1u : 0u);
  }
}

/// The sum of `learners` quantized vectors (modulo nothing: validate() ruled out a wrap) back in
/// the values' scale: each value counts its steps from -clipping_range.
template <class Scalar>
void dequantize_sum(std::span<const std::uint32_t> sum, std::size_t learners, const quantization& q, std::span<Scalar> out) {
  if (sum.size() != out.size()) throw layout_error("dequantize_sum: the output holds another number of values");
  const double offset = double(learners) * q.clipping_range, step = q.step();
  for (std::size_t i = 0; i < sum.size(); ++i) out[i] = static_cast<Scalar>(double(sum[i]) * step - offset);
}

/// Whether a mask is added (self mask; pairwise mask with a higher neighbour) or subtracted
/// (pairwise mask with a lower neighbour).
enum class mask_sign : std::uint8_t { add, subtract };

/// @brief Adds or subtracts the mask of `seed` to `vector`, modulo 2^modulus_bits, streaming the
/// keystream through a 64 KiB buffer.
inline void apply_mask(std::span<std::uint32_t> vector, const key_bytes& seed, mask_sign sign, std::uint32_t modulus_mask) {
  auto context = detail::new_cipher_context();
  const std::array<std::uint8_t, 16> counter{};
  detail::require(EVP_EncryptInit_ex(context.get(), EVP_aes_256_ctr(), nullptr, seed.data(), counter.data()),
                  "starting AES-256-CTR");
  std::array<std::uint32_t, 16384> mask{};
  for (std::size_t first = 0; first < vector.size(); first += mask.size()) {
    const std::size_t count = std::min(mask.size(), vector.size() - first);
    auto* bytes = reinterpret_cast<std::uint8_t*>(mask.data());
    std::memset(bytes, 0, count * sizeof(std::uint32_t));
    int length = 0;
    detail::require(EVP_EncryptUpdate(context.get(), bytes, &length, bytes, int(count * sizeof(std::uint32_t))),
                    "expanding a mask");
    std::uint32_t* out = vector.data() + first;
    if (sign == mask_sign::add)
      for (std::size_t i = 0; i < count; ++i) out[i] = (out[i] + mask[i]) & modulus_mask;
    else
      for (std::size_t i = 0; i < count; ++i) out[i] = (out[i] - mask[i]) & modulus_mask;
  }
}

}  // namespace flotilla::secure_aggregation

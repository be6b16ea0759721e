#pragma once
// Top-k sparsification with error feedback (Stich, Cordonnier and Jaggi 2018): a learner sends
// only the k largest entries of its update plus what it left out before, and carries the rest
// to its next round, so nothing is dropped for good. Payload: the update's length (8 bytes),
// k (8 bytes), the k indices ascending (4 bytes each), then their values (float32), all
// little-endian.

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "flotilla/errors.hpp"

namespace flotilla::compression {

/// A sparse update: `size` values, of which those at `indices` (ascending) are `values`.
struct sparse_update {
  std::uint64_t size = 0;
  std::vector<std::uint32_t> indices{};
  std::vector<float> values{};
};

/// @brief The learner's side: keeps the residual between rounds.
class top_k_encoder {
 public:
  /// @throws configuration_error unless 0 < fraction <= 1.
  explicit top_k_encoder(double fraction) : fraction_(fraction) {
    if (!(fraction > 0 && fraction <= 1)) throw configuration_error("top-k's fraction must be in (0, 1]");
  }

  /// The k = ceil(fraction * size) largest magnitudes of update + residual (ties to the lower
  /// index); the other entries become the residual. @throws layout_error when the update's size
  /// changes between calls, task_error for a non-finite value or more than 2^32 values.
  sparse_update encode(std::span<const float> update) {
    if (update.size() > std::size_t{0xFFFFFFFFu}) throw task_error("top-k addresses at most 2^32 values");
    if (residual_.empty()) residual_.assign(update.size(), 0.0f);
    if (residual_.size() != update.size())
      throw layout_error("top-k's update holds " + std::to_string(update.size()) + " values; its residual " +
                         std::to_string(residual_.size()));
    for (std::size_t i = 0; i < update.size(); ++i) {
      residual_[i] += update[i];  // now what is owed: the update plus what was left out before
      if (!std::isfinite(residual_[i])) throw task_error("the update holds a non-finite value at index " + std::to_string(i));
    }
    const auto k = std::max<std::size_t>(1, std::size_t(std::ceil(fraction_ * double(update.size()))));
    std::vector<std::uint32_t> order(update.size());
    std::iota(order.begin(), order.end(), 0u);
    const auto larger = [&](std::uint32_t a, std::uint32_t b) {
      const float x = std::abs(residual_[a]), y = std::abs(residual_[b]);
      return x != y ? x > y : a < b;
    };
    const auto kept = std::min(k, order.size());
    std::nth_element(order.begin(), order.begin() + std::ptrdiff_t(kept) - (kept ? 1 : 0), order.end(), larger);
    order.resize(kept);
    std::sort(order.begin(), order.end());
    sparse_update out{update.size(), std::move(order), {}};
    out.values.reserve(out.indices.size());
    for (const auto i : out.indices) {
      out.values.push_back(residual_[i]);
      residual_[i] = 0;  // sent whole
    }
    return out;
  }

  /// What is still owed: added to the next update before selecting.
  [[nodiscard]] std::span<const float> residual() const { return residual_; }

 private:
  double fraction_;
  std::vector<float> residual_;
};

/// The payload of a sparse update.
[[nodiscard]] inline std::vector<std::uint8_t> encode_sparse(const sparse_update& update) {
  std::vector<std::uint8_t> out;
  out.reserve(16 + 8 * update.indices.size());
  const auto put = [&](std::uint64_t value, int width) {
    for (int byte = 0; byte < width; ++byte) out.push_back(std::uint8_t(value >> (8 * byte)));
  };
  put(update.size, 8);
  put(update.indices.size(), 8);
  for (const auto i : update.indices) put(i, 4);
  for (const auto v : update.values) put(std::bit_cast<std::uint32_t>(v), 4);
  return out;
}

namespace detail {
inline std::uint64_t load_le(std::span<const std::uint8_t> bytes, std::size_t at, int width) {
  std::uint64_t value = 0;
  for (int byte = 0; byte < width; ++byte) value |= std::uint64_t(bytes[at + std::size_t(byte)]) << (8 * byte);
  return value;
}
}  // namespace detail

/// @brief Why `bytes` cannot be a sparse update of `size` values with at most `max_entries`
/// entries, or nothing: another size, a count beyond the bytes, the size or the limit, indices
/// not ascending or out of range, a value that is not finite, bytes left over.
[[nodiscard]] inline std::optional<std::string> check_sparse(std::span<const std::uint8_t> bytes, std::uint64_t size,
                                                             std::uint64_t max_entries) {
  if (bytes.size() < 16) return "a sparse update of " + std::to_string(bytes.size()) + " bytes is truncated";
  const auto claimed = detail::load_le(bytes, 0, 8);
  if (claimed != size)
    return "a sparse update for " + std::to_string(claimed) + " values; the model has " + std::to_string(size);
  const auto count = detail::load_le(bytes, 8, 8);
  if (count > size || count != (bytes.size() - 16) / 8 || (bytes.size() - 16) % 8 != 0)
    return "a sparse update claims " + std::to_string(count) + " entries in " + std::to_string(bytes.size()) +
           " bytes for " + std::to_string(size) + " values";
  if (count > max_entries)
    return "a sparse update of " + std::to_string(count) + " entries; the round's codec sends at most " +
           std::to_string(max_entries);
  std::uint64_t previous = 0;
  for (std::size_t j = 0; j < count; ++j) {
    const auto index = detail::load_le(bytes, 16 + 4 * j, 4);
    if (index >= size || (j > 0 && index <= previous))
      return "sparse entry " + std::to_string(j) + " has index " + std::to_string(index) +
             "; indices ascend and stay below " + std::to_string(size);
    previous = index;
    if (!std::isfinite(std::bit_cast<float>(std::uint32_t(detail::load_le(bytes, 16 + 4 * count + 4 * j, 4)))))
      return "sparse entry " + std::to_string(j) + " is not finite";
  }
  return std::nullopt;
}

/// @brief Adds `weight` times the entries of a checked sparse payload that fall in `begin` to
/// `begin + out.size()` to `out`; a binary search finds the first, so a fold may go slice by slice.
inline void add_sparse(std::span<const std::uint8_t> bytes, std::size_t begin, std::span<float> out, float weight) {
  const std::size_t count = detail::load_le(bytes, 8, 8);
  const auto index = [&](std::size_t j) { return std::size_t(detail::load_le(bytes, 16 + 4 * j, 4)); };
  std::size_t low = 0, high = count;  // the first entry at or after begin
  while (low < high) {
    const std::size_t middle = low + (high - low) / 2;
    if (index(middle) < begin) low = middle + 1;
    else high = middle;
  }
  const std::size_t end = begin + out.size();
  for (std::size_t j = low; j < count && index(j) < end; ++j)
    out[index(j) - begin] += weight * std::bit_cast<float>(std::uint32_t(detail::load_le(bytes, 16 + 4 * count + 4 * j, 4)));
}

/// @brief A sparse update from its payload, for a model of `size` values.
/// @throws decode_error with check_sparse's reason.
[[nodiscard]] inline sparse_update decode_sparse(std::span<const std::uint8_t> bytes, std::uint64_t size) {
  if (auto problem = check_sparse(bytes, size, size)) throw decode_error(*problem);
  sparse_update out;
  out.size = size;
  const std::size_t count = detail::load_le(bytes, 8, 8);
  out.indices.resize(count);
  out.values.resize(count);
  for (std::size_t j = 0; j < count; ++j) {
    out.indices[j] = std::uint32_t(detail::load_le(bytes, 16 + 4 * j, 4));
    out.values[j] = std::bit_cast<float>(std::uint32_t(detail::load_le(bytes, 16 + 4 * count + 4 * j, 4)));
  }
  return out;
}

}  // namespace flotilla::compression

#pragma once
// Top-k sparsification with error feedback (Stich, Cordonnier and Jaggi 2018): a learner sends
// only the k largest entries of its update plus what it left out before, and carries the rest
// to its next round, so nothing is dropped for good. Payload: the update's length (8 bytes),
// k (8 bytes), the k indices ascending (4 bytes each), then their values (float32), all
// little-endian.

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "flotilla/detail/parallel.hpp"
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
  /// Keeps the largest `fraction` of each update, working on `threads` threads (0: one per core)
  /// for large ones. @throws configuration_error unless 0 < fraction <= 1.
  explicit top_k_encoder(double fraction, std::size_t threads = 0) : fraction_(fraction), threads_(threads) {
    if (!(fraction > 0 && fraction <= 1)) throw configuration_error("top-k's fraction must be in (0, 1]");
  }

  /// The k = ceil(fraction * size) largest magnitudes of update + residual (ties to the lower
  /// index); the other entries become the residual. @throws layout_error when the update's size
  /// changes between calls, task_error for more than 2^32 values or a non-finite value (which
  /// also clears the residual, so one bad round does not poison the next).
  sparse_update encode(std::span<const float> update) {
    if (update.size() > std::size_t{0xFFFFFFFFu}) throw task_error("top-k addresses at most 2^32 values");
    if (residual_.empty()) residual_.assign(update.size(), 0.0f);
    if (residual_.size() != update.size())
      throw layout_error("top-k's update holds " + std::to_string(update.size()) + " values; its residual " +
                         std::to_string(residual_.size()));
    const std::size_t n = update.size();
    const auto k = std::min(n, std::max<std::size_t>(1, std::size_t(std::ceil(fraction_ * double(n)))));
    // One pass adds the update to what is owed, checks it is finite and gathers the indices at
    // or above a threshold a sample gave; only when fewer than k pass does a second gather all.
    const float threshold = sampled_threshold(update, k);
    std::atomic<bool> finite{true};
    auto chosen = gather(threshold, [&](std::size_t begin, std::size_t end, std::vector<candidate>& passed) {
      std::uint32_t largest = 0;  // the largest magnitude's bits: at or above an infinity's, not finite
      for (std::size_t i = begin; i < end; ++i) {
        residual_[i] += update[i];  // now what is owed: the update plus what was left out before
        const auto bits = std::bit_cast<std::uint32_t>(residual_[i]) & 0x7FFFFFFFu;
        largest = std::max(largest, bits);
        if (std::bit_cast<float>(bits) >= threshold) passed.push_back({std::uint32_t(i), std::bit_cast<float>(bits)});
      }
      if (largest >= 0x7F800000u) finite = false;
    }, k);
    if (!finite) {
      for (std::size_t i = 0; i < n; ++i)
        if (!std::isfinite(update[i]) || !std::isfinite(residual_[i])) {
          std::fill(residual_.begin(), residual_.end(), 0.0f);  // nothing owed: the next update starts clean
          throw task_error("the update holds a non-finite value at index " + std::to_string(i));
        }
    }
    if (chosen.size() < k)
      chosen = gather(0.0f, [&](std::size_t begin, std::size_t end, std::vector<candidate>& passed) {
        for (std::size_t i = begin; i < end; ++i) passed.push_back({std::uint32_t(i), std::abs(residual_[i])});
      }, k);
    // The k largest magnitudes, ties to the lower index: the k-th largest magnitude from a copy,
    // then one pass over the candidates (in index order) keeps those above it and the first
    // ties, so the indices stay ascending without a sort.
    if (chosen.size() > k) {
      std::vector<float> magnitudes(chosen.size());
      for (std::size_t j = 0; j < chosen.size(); ++j) magnitudes[j] = chosen[j].magnitude;
      std::nth_element(magnitudes.begin(), magnitudes.begin() + std::ptrdiff_t(k) - 1, magnitudes.end(), std::greater<>());
      const float kth = magnitudes[k - 1];
      std::size_t ties = k - std::size_t(std::count_if(chosen.begin(), chosen.end(), [&](const candidate& c) { return c.magnitude > kth; }));
      std::size_t kept = 0;
      for (const auto& entry : chosen) {
        const bool tie = entry.magnitude == kth && ties > 0;
        if (entry.magnitude > kth || tie) chosen[kept++] = entry;
        if (tie) --ties;
      }
      chosen.resize(kept);
    }
    sparse_update out{n, {}, {}};
    out.indices.reserve(k);
    out.values.reserve(k);
    for (const auto& entry : chosen) {
      out.indices.push_back(entry.index);
      out.values.push_back(residual_[entry.index]);
      residual_[entry.index] = 0;  // sent whole
    }
    return out;
  }

  /// What is still owed: added to the next update before selecting.
  [[nodiscard]] std::span<const float> residual() const { return residual_; }

 private:
  struct candidate {
    std::uint32_t index;
    float magnitude;
  };

  // A magnitude about 2k of the n values reach, from 4,096 of them (residual plus update) at
  // scattered positions (hashed, so no stride can fall in step with the model's layers); zero
  // when the update is too small for sampling to pay. Every one of the k largest reaches the
  // threshold whenever at least k values do.
  float sampled_threshold(std::span<const float> update, std::size_t k) const {
    const std::size_t n = update.size();
    constexpr std::size_t sample_size = 4096;
    if (n <= 4 * sample_size || 8 * k >= n) return 0.0f;
    std::vector<float> sample(sample_size);
    for (std::size_t j = 0; j < sample_size; ++j) {
      std::uint64_t z = (j + 1) * 0x9E3779B97F4A7C15ull;  // SplitMix64's finalizer: a scattered position
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      const auto at = (z ^ (z >> 31)) % n;
      sample[j] = std::abs(residual_[at] + update[at]);
    }
    const auto rank = std::min(sample_size - 1, 2 * k * sample_size / n);
    std::nth_element(sample.begin(), sample.begin() + std::ptrdiff_t(rank), sample.end(), std::greater<>());
    return std::isfinite(sample[rank]) ? sample[rank] : 0.0f;
  }

  // Runs `pass(begin, end, passed)` over pieces of the residual on the encoder's threads and
  // joins what each gathered, in order, so indices ascend.
  template <class Pass>
  std::vector<candidate> gather(float threshold, Pass pass, std::size_t k) {
    const std::size_t n = residual_.size();
    std::mutex joining;
    std::vector<std::pair<std::size_t, std::vector<candidate>>> pieces;
    flotilla::detail::for_each_piece(n, threads_, [&](std::size_t begin, std::size_t end) {
      std::vector<candidate> passed;
      passed.reserve(threshold > 0 ? 3 * k * (end - begin) / n + 16 : end - begin);
      pass(begin, end, passed);
      std::lock_guard lock(joining);
      pieces.emplace_back(begin, std::move(passed));
    });
    std::sort(pieces.begin(), pieces.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<candidate> all;
    for (auto& piece : pieces) all.insert(all.end(), piece.second.begin(), piece.second.end());
    return all;
  }

  double fraction_;
  std::size_t threads_;
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

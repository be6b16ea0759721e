#pragma once
// Noise for differential privacy: where the random bits come from, Gaussian noise for the
// floating-point path, and the exact discrete Gaussian for the integer path.
//
// Random bits: a NoiseSource. The default, os_random, asks the kernel (getrandom(2), its
// ChaCha20-based generator seeded from hardware entropy); openssl_random.hpp offers OpenSSL's
// CTR-DRBG, faster, for users who link flotilla::crypto. Neither is the selection generator:
// mt19937_64's state can be recovered from its output, so noise drawn from it could be
// subtracted. seeded_random_for_tests_only is what its name says.
//
// Gaussian samples: the ziggurat (Marsaglia and Tsang 2000, 256 layers) in double, one 64-bit
// word per sample in 99% of draws: 8 bits pick the layer, 1 the sign, 53 the position.
//
// Discrete Gaussian: Canonne, Kamath and Steinke 2020, "The Discrete Gaussian for Differential
// Privacy", Algorithms 1 to 3: exact rejection sampling in integer arithmetic, no floating point.

#include <sys/random.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <system_error>

#include "flotilla/detail/parallel.hpp"
#include "flotilla/detail/text.hpp"
#include "flotilla/errors.hpp"
#include "flotilla/random.hpp"

namespace flotilla::privacy {

/// @brief Where noise gets its random bits.
///
/// Requirements, each with its reason:
///  1. `r.fill(words)` fills a span of `std::uint64_t` with independent uniform words.
///  2. `r.fork(key)` returns a source for one worker thread: noise for a large model is drawn
///     on several threads at once. A stateless source returns a copy of itself; a seeded one
///     derives a stream from the key, so its output depends only on the seed and the keys.
template <class R>
concept NoiseSource = std::copy_constructible<R> && requires(R& r, std::span<std::uint64_t> words, std::uint64_t key) {
  r.fill(words);
  { r.fork(key) } -> std::same_as<R>;
};

/// The kernel's cryptographically secure generator (getrandom(2)). Thread-safe and stateless.
class os_random {
 public:
  /// @throws std::system_error if the kernel cannot provide random bytes.
  void fill(std::span<std::uint64_t> words) const {
    auto* bytes = reinterpret_cast<unsigned char*>(words.data());
    std::size_t left = words.size_bytes();
    while (left > 0) {
      const auto got = ::getrandom(bytes, left, 0);
      if (got < 0) {
        if (errno == EINTR) continue;
        throw std::system_error(errno, std::generic_category(), "getrandom");
      }
      bytes += got;
      left -= std::size_t(got);
    }
  }
  [[nodiscard]] os_random fork(std::uint64_t) const { return {}; }
};

/// @brief A reproducible, NOT secure source for tests and experiments that must repeat: noise
/// drawn from it can be predicted by anyone who knows the seed, so it protects nothing.
class seeded_random_for_tests_only {
 public:
  explicit seeded_random_for_tests_only(std::uint64_t seed) : seed_(seed) {}
  void fill(std::span<std::uint64_t> words) {
    for (auto& word : words) word = mix_seed(seed_, counter_++);
  }
  [[nodiscard]] seeded_random_for_tests_only fork(std::uint64_t key) const {
    return seeded_random_for_tests_only(mix_seed(seed_ ^ 0x5851F42D4C957F2Dull, key + counter_));
  }

 private:
  std::uint64_t seed_;
  std::uint64_t counter_ = 0;
};

/// Words from a source, fetched in blocks (one kernel call per 8 KiB for os_random).
template <NoiseSource R>
class word_stream {
 public:
  explicit word_stream(R source) : source_(std::move(source)) {}
  std::uint64_t operator()() {
    if (next_ == block_.size()) {
      source_.fill(block_);
      next_ = 0;
    }
    return block_[next_++];
  }
  /// Uniform in [0, 1) from 53 bits.
  double unit() { return double(std::int64_t((*this)() >> 11)) * 0x1.0p-53; }

 private:
  R source_;
  std::array<std::uint64_t, 1024> block_{};
  std::size_t next_ = block_.size();
};

namespace detail {
// The ziggurat's layers for the unnormalized density f(x) = exp(-x^2 / 2): 256 regions of equal
// area v; x[0] is the base region's pseudo-width v / f(r), x[1] = r, x[256] = 0.
struct ziggurat_tables {
  static constexpr double r = 3.6541528853610088;
  static constexpr double v = 0.00492867323399;
  std::array<double, 257> x{};
  std::array<double, 257> f{};
  ziggurat_tables() {
    const auto density = [](double t) { return std::exp(-0.5 * t * t); };
    x[0] = v / density(r);
    x[1] = r;
    for (int i = 1; i < 255; ++i) x[i + 1] = std::sqrt(-2 * std::log(v / x[i] + density(x[i])));
    x[256] = 0;
    for (int i = 0; i < 257; ++i) f[i] = density(x[i]);
  }
};

// 128-bit unsigned arithmetic for the discrete Gaussian's exact fractions (a GCC and Clang
// extension; __extension__ keeps -Wpedantic quiet about it).
__extension__ typedef unsigned __int128 uint128;

inline const ziggurat_tables& ziggurat() {
  static const ziggurat_tables tables;
  return tables;
}
}  // namespace detail

namespace detail {
// One ziggurat draw starting from `word`; the rare retries (about 1.2% of draws) take more words
// from `more()`. 8 bits pick the layer, 1 the sign, the top 53 the position in the layer.
template <class MoreWords>
double ziggurat_from(std::uint64_t word, MoreWords& more) {
  const auto& table = ziggurat();
  constexpr double r = ziggurat_tables::r;
  const auto unit = [&more] { return double(std::int64_t(more() >> 11)) * 0x1.0p-53; };
  for (;;) {
    const unsigned layer = word & 0xFF;
    const double sign = 1.0 - 2.0 * double((word >> 8) & 1);  // arithmetic: a branch would miss half the time
    const double x = double(std::int64_t(word >> 11)) * 0x1.0p-53 * table.x[layer];
    if (x < table.x[layer + 1]) return sign * x;  // inside the next layer's width: under the curve
    if (layer == 0) {  // the tail beyond r (Marsaglia 1964)
      for (;;) {
        const double a = -std::log1p(-unit()) / r;
        const double b = -std::log1p(-unit());
        if (2 * b > a * a) return sign * (r + a);
      }
    }
    const double y = table.f[layer] + unit() * (table.f[layer + 1] - table.f[layer]);
    if (y < std::exp(-0.5 * x * x)) return sign * x;  // the wedge
    word = more();
  }
}
}  // namespace detail

/// One standard normal sample.
template <NoiseSource R>
[[nodiscard]] double standard_normal(word_stream<R>& bits) {
  return detail::ziggurat_from(bits(), bits);
}

/// @brief Adds N(0, stddev^2) to every value, on `threads` threads (0: one per core) for large
/// spans. Samples are doubles, added in double and rounded once to the value's type.
/// `key` tells the workers' streams apart for a seeded source (use a new key per call).
template <class Scalar, NoiseSource R>
void add_gaussian_noise(std::span<Scalar> values, double stddev, const R& source, std::uint64_t key = 0,
                        std::size_t threads = 0) {
  if (!(stddev >= 0) || !std::isfinite(stddev))
    throw configuration_error("noise standard deviation must be finite and non-negative; got " +
                              flotilla::detail::number(stddev));
  if (stddev == 0) return;
  flotilla::detail::for_each_piece(values.size(), threads, [&](std::size_t begin, std::size_t end) {
    // A block of words per source call, one word per value; retries draw from a second stream.
    R bits = source.fork(mix_seed(key, begin));
    word_stream<R> retries(source.fork(mix_seed(~key, begin)));
    const auto& table = detail::ziggurat();
    std::array<std::uint64_t, 4096> words;  // 32 KiB: OpenSSL's DRBG runs at full speed from this size
    for (std::size_t first = begin; first < end; first += words.size()) {
      const std::size_t count = std::min(words.size(), end - first);
      bits.fill(std::span(words.data(), count));
      Scalar* out = values.data() + first;
      for (std::size_t i = 0; i < count; ++i) {
        // The ziggurat's first test inline (98.8% of draws end here); the rest out of line.
        const std::uint64_t word = words[i];
        const unsigned layer = word & 0xFF;
        const double x = double(std::int64_t(word >> 11)) * 0x1.0p-53 * table.x[layer];
        const double z = x < table.x[layer + 1] ? (1.0 - 2.0 * double((word >> 8) & 1)) * x
                                                : detail::ziggurat_from(word, retries);
        out[i] = static_cast<Scalar>(double(out[i]) + stddev * z);
      }
    }
  });
}

/// @brief Exact samples of the discrete Gaussian N_Z(0, sigma^2): P(x) proportional to
/// exp(-x^2 / (2 sigma^2)) over the integers (Canonne, Kamath and Steinke 2020, Algorithm 3).
///
/// sigma^2 is held as a fraction a / b with b a power of two, rounded up (never less noise than
/// asked). Everything after that is integer arithmetic, so the samples are exactly distributed
/// for that sigma^2, but for one cut: a Laplace candidate beyond 64 t (t = floor(sigma) + 1) is
/// redrawn, which changes probabilities by less than exp(-60): the Gaussian test would reject
/// such a candidate with probability above 1 - exp(-1900) anyway.
template <NoiseSource R = os_random>
class discrete_gaussian {
 public:
  /// @throws configuration_error unless 0 < sigma <= 2^20.
  explicit discrete_gaussian(double sigma, R source = R()) : bits_(std::move(source)) {
    if (!(sigma > 0) || !(sigma <= 1048576.0))
      throw configuration_error("the discrete Gaussian's sigma must be in (0, 2^20]; got " +
                                flotilla::detail::number(sigma));
    const double variance = sigma * sigma;
    denominator_ = 1u << 16;
    while (denominator_ > 1 && variance * double(denominator_) > 0x1.0p40) denominator_ >>= 1;
    numerator_ = static_cast<std::uint64_t>(std::ceil(variance * double(denominator_)));
    // t = floor(sigma) + 1, with floor(sigma) the largest k such that k^2 <= a / b.
    std::uint64_t k = static_cast<std::uint64_t>(std::sqrt(double(numerator_) / double(denominator_)));
    while (k > 0 && wide(k) * k * denominator_ > numerator_) --k;
    while (wide(k + 1) * (k + 1) * denominator_ <= numerator_) ++k;
    t_ = k + 1;
  }

  /// sigma^2 as used: numerator / denominator.
  [[nodiscard]] double variance() const { return double(numerator_) / double(denominator_); }

  /// One sample.
  std::int64_t operator()() {
    const wide a = numerator_, b = denominator_, t = t_;
    for (;;) {
      const std::int64_t y = laplace();
      const wide magnitude = wide(y < 0 ? -y : y);
      if (magnitude > 64 * t) continue;
      // gamma = (|y| - sigma^2 / t)^2 / (2 sigma^2) = (|y| t b - a)^2 / (2 a b t^2)
      const wide scaled = magnitude * t * b;
      const wide difference = scaled > a ? scaled - a : a - scaled;
      if (bernoulli_exp(difference * difference, 2 * a * b * t * t)) return y;
    }
  }

 private:
  using wide = detail::uint128;

  // Uniform in [0, n), n > 0, by rejection: no bias.
  wide uniform_below(wide n) {
    if (n <= wide(UINT64_MAX)) {
      const auto bound = std::uint64_t(n);
      const std::uint64_t floor = (0 - bound) % bound;  // 2^64 mod bound
      for (;;)
        if (const auto r = bits_(); r >= floor) return r % bound;
    }
    const wide floor = (0 - n) % n;
    for (;;) {
      const wide r = (wide(bits_()) << 64) | bits_();
      if (r >= floor) return r % n;
    }
  }
  bool bernoulli(wide numerator, wide denominator) { return uniform_below(denominator) < numerator; }

  // Bernoulli(exp(-n / d)) (Algorithm 1): for n / d <= 1 the parity of the first failure of
  // Bernoulli(gamma / k); above 1, one Bernoulli(exp(-1)) per whole unit and one for the rest.
  bool bernoulli_exp(wide n, wide d) {
    if (n > d) {
      for (wide whole = n / d; whole > 0; --whole)
        if (!bernoulli_exp_at_most_one(1, 1)) return false;
      return bernoulli_exp_at_most_one(n % d, d);
    }
    return bernoulli_exp_at_most_one(n, d);
  }
  bool bernoulli_exp_at_most_one(wide n, wide d) {
    std::uint64_t k = 1;
    while (bernoulli(n, d) && bernoulli(1, k)) ++k;  // Bernoulli(gamma / k) as two independent draws
    return k % 2 == 1;
  }

  // Discrete Laplace with scale t: P(x) proportional to exp(-|x| / t) (Algorithm 2, s = 1).
  std::int64_t laplace() {
    for (;;) {
      const wide u = uniform_below(t_);
      if (!bernoulli_exp(u, t_)) continue;
      std::uint64_t v = 0;
      while (bernoulli_exp_at_most_one(1, 1)) ++v;
      const auto x = static_cast<std::int64_t>(u + wide(t_) * v);
      const bool negative = bernoulli(1, 2);
      if (negative && x == 0) continue;
      return negative ? -x : x;
    }
  }

  word_stream<R> bits_;
  std::uint64_t numerator_ = 0, denominator_ = 1, t_ = 1;
};

}  // namespace flotilla::privacy

#pragma once
// Reproducible randomness. The engine is std::mt19937_64, whose output the standard fixes; the
// distributions are written here because the standard library's are implementation-defined,
// and a seed should give the same selection and the same shuffles with every compiler.

#include <cmath>
#include <cstdint>
#include <numbers>
#include <random>
#include <span>
#include <utility>
#include <vector>

namespace flotilla {

/// The engine behind every seeded choice in Flotilla.
using random_engine = std::mt19937_64;

/// Mixes a seed with other numbers (a round, a learner id) into a new, well-spread seed
/// (SplitMix64 finalizer), so streams derived for different learners do not overlap.
[[nodiscard]] constexpr std::uint64_t mix_seed(std::uint64_t seed, std::uint64_t value) {
  std::uint64_t z = seed + 0x9E3779B97F4A7C15ull * (value + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// Uniform integer in [0, bound), without modulo bias (rejection sampling). bound > 0.
[[nodiscard]] inline std::uint64_t uniform_below(random_engine& engine, std::uint64_t bound) {
  const std::uint64_t limit = std::uint64_t(-1) - std::uint64_t(-1) % bound;  // multiple of bound
  std::uint64_t draw;
  do draw = engine(); while (draw >= limit);
  return draw % bound;
}

/// Uniform double in [0, 1) from the top 53 bits of one draw.
[[nodiscard]] inline double uniform_unit(random_engine& engine) {
  return static_cast<double>(engine() >> 11) * 0x1.0p-53;
}

/// Standard normal draw (Box-Muller; the second value is discarded to keep the engine state
/// a simple function of the number of draws).
[[nodiscard]] inline double standard_normal(random_engine& engine) {
  const double u1 = 1.0 - uniform_unit(engine);  // in (0, 1]: log stays finite
  const double u2 = uniform_unit(engine);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

/// Fisher-Yates shuffle.
template <class T>
void shuffle(std::span<T> items, random_engine& engine) {
  for (std::size_t i = items.size(); i > 1; --i) std::swap(items[i - 1], items[uniform_below(engine, i)]);
}

/// A Gamma(shape, 1) sample (Marsaglia and Tsang 2000; shapes below one by the boost
/// gamma(shape + 1) * u^(1 / shape)).
[[nodiscard]] inline double gamma_sample(random_engine& engine, double shape) {
  if (shape < 1) return gamma_sample(engine, shape + 1) * std::pow(uniform_unit(engine), 1 / shape);
  const double d = shape - 1.0 / 3, c = 1 / std::sqrt(9 * d);
  for (;;) {
    const double x = standard_normal(engine);
    const double v = std::pow(1 + c * x, 3);
    if (v <= 0) continue;
    const double u = uniform_unit(engine);
    if (u > 0 && std::log(u) < 0.5 * x * x + d - d * v + d * std::log(v)) return d * v;
  }
}

/// Proportions drawn from a symmetric Dirichlet(alpha) over `count` parts.
[[nodiscard]] inline std::vector<double> dirichlet_sample(random_engine& engine, std::size_t count, double alpha) {
  std::vector<double> share(count);
  double total = 0;
  for (auto& x : share) total += (x = gamma_sample(engine, alpha));
  if (total <= 0) {  // every draw underflowed (tiny alpha): all mass on one part
    share.assign(count, 0.0);
    share[uniform_below(engine, count)] = 1;
    return share;
  }
  for (auto& x : share) x /= total;
  return share;
}

}  // namespace flotilla

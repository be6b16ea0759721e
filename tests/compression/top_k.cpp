#include <flotilla/compression/top_k.hpp>

#include <flotilla/random.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

// Top-k with error feedback against hand-computed values: which entries go, the residual carried
// exactly to the next round, the payload's layout, and corrupted payloads refused.

namespace compression = flotilla::compression;

TEST_CASE("the largest entries go, the rest is carried exactly to the next round") {
  compression::top_k_encoder encoder(0.4);  // k = ceil(0.4 * 5) = 2
  const std::vector<float> first{0.5f, -3, 1, 2, -0.25f};
  const auto sent = encoder.encode(first);
  CHECK(sent.size == 5);
  CHECK(sent.indices == std::vector<std::uint32_t>{1, 3});
  CHECK(sent.values == std::vector<float>{-3, 2});
  CHECK(std::vector<float>(encoder.residual().begin(), encoder.residual().end()) == std::vector<float>{0.5f, 0, 1, 0, -0.25f});
  // Next round: owed 0.5 + 1 = 1.5 at 0, 1 + 0 = 1 at 2, 0 - 1.25 at 3: the two largest go.
  const std::vector<float> second{1, 0.75f, 0, -1.25f, 0.25f};
  const auto again = encoder.encode(second);
  CHECK(again.indices == std::vector<std::uint32_t>{0, 3});
  CHECK(again.values == std::vector<float>{1.5f, -1.25f});
  CHECK(std::vector<float>(encoder.residual().begin(), encoder.residual().end()) == std::vector<float>{0, 0.75f, 1, 0, 0});
  // Ties go to the lower index.
  compression::top_k_encoder tied(0.5);
  CHECK(tied.encode(std::vector<float>{1, -1, 1, -1}).indices == std::vector<std::uint32_t>{0, 1});
}

TEST_CASE("the payload round-trips, and corrupted ones are refused with the reason") {
  const compression::sparse_update update{6, {1, 4}, {-3, 0.5f}};
  auto bytes = compression::encode_sparse(update);
  CHECK(bytes.size() == 16 + 2 * 8);
  const auto back = compression::decode_sparse(bytes, 6);
  CHECK(back.indices == update.indices);
  CHECK(back.values == update.values);
  CHECK_THROWS_WITH_AS((void)compression::decode_sparse(bytes, 7), "a sparse update for 6 values; the model has 7",
                       flotilla::decode_error);
  auto swapped = bytes;
  std::swap(swapped[16], swapped[20]);  // indices 4, 1: not ascending
  CHECK_THROWS_WITH_AS((void)compression::decode_sparse(swapped, 6),
                       "sparse entry 1 has index 1; indices ascend and stay below 6", flotilla::decode_error);
  auto lying = bytes;
  lying[8] = 3;
  CHECK_THROWS_WITH_AS((void)compression::decode_sparse(lying, 6), "a sparse update claims 3 entries in 32 bytes for 6 values",
                       flotilla::decode_error);
  bytes.resize(10);
  CHECK_THROWS_WITH_AS((void)compression::decode_sparse(bytes, 6), "a sparse update of 10 bytes is truncated",
                       flotilla::decode_error);
  CHECK_THROWS_WITH_AS(compression::top_k_encoder(0), "top-k's fraction must be in (0, 1]", flotilla::configuration_error);
}

TEST_CASE("large updates send exactly the entries a full sort would choose, round after round") {
  // The encoder samples a threshold and selects among the values that reach it; a reference
  // sorts every magnitude. Random, layer-periodic and heavily tied values, two rounds each.
  flotilla::random_engine engine(5);
  const std::size_t n = 100'000;
  for (const double fraction : {0.01, 0.1}) {
    for (int pattern = 0; pattern < 3; ++pattern) {
      CAPTURE(fraction);
      CAPTURE(pattern);
      compression::top_k_encoder encoder(fraction);
      std::vector<float> owed(n, 0.0f);
      for (int round = 0; round < 2; ++round) {
        std::vector<float> update(n);
        for (std::size_t i = 0; i < n; ++i) {
          const double normal = flotilla::standard_normal(engine);
          update[i] = pattern == 0 ? float(normal) : pattern == 1 ? float(normal * double(1 + i % 17)) : float(1 + i % 2) * (normal < 0 ? -1.0f : 1.0f);
        }
        const auto sent = encoder.encode(update);
        for (std::size_t i = 0; i < n; ++i) owed[i] += update[i];
        std::vector<std::uint32_t> order(n);
        for (std::size_t i = 0; i < n; ++i) order[i] = std::uint32_t(i);
        std::sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) {
          return std::abs(owed[a]) != std::abs(owed[b]) ? std::abs(owed[a]) > std::abs(owed[b]) : a < b;
        });
        order.resize(std::size_t(std::ceil(fraction * double(n))));
        std::sort(order.begin(), order.end());
        REQUIRE(sent.indices == order);
        for (std::size_t j = 0; j < order.size(); ++j) {
          REQUIRE(sent.values[j] == owed[order[j]]);
          owed[order[j]] = 0;
        }
        REQUIRE(std::equal(owed.begin(), owed.end(), encoder.residual().begin()));
      }
    }
  }
}

TEST_CASE("a non-finite update is refused and clears what was owed") {
  compression::top_k_encoder encoder(0.5);
  (void)encoder.encode(std::vector<float>{1, 2, 3, 4});
  CHECK(std::vector<float>(encoder.residual().begin(), encoder.residual().end()) == std::vector<float>{1, 2, 0, 0});
  CHECK_THROWS_WITH_AS((void)encoder.encode(std::vector<float>{1, NAN, 1, 1}), "the update holds a non-finite value at index 1",
                       flotilla::task_error);
  CHECK(std::vector<float>(encoder.residual().begin(), encoder.residual().end()) == std::vector<float>{0, 0, 0, 0});
}

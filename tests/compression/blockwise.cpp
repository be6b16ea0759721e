#include <flotilla/compression/blockwise.hpp>

#include <flotilla/random.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <vector>

// Blockwise 8- and 4-bit quantization: values on the grid come back exactly, every value within
// one step of its block, the rounding unbiased over many draws, and corrupted payloads refused.

namespace compression = flotilla::compression;

TEST_CASE("values on the grid come back exactly, in the documented layout") {
  // Block 1: largest 127, so the grid is the integers; block 2: largest 2, steps of 2/127.
  const std::vector<float> values{127, -3, 5, 0, 2, -2};
  const compression::blockwise_format eight{.bits = 8, .block = 4};
  std::vector<std::uint8_t> encoded(eight.encoded_size(values.size()));
  CHECK(encoded.size() == 4 * 2 + 6);
  compression::encode_blockwise(values, eight, encoded, 1);
  CHECK(encoded[8] == 127);
  CHECK(encoded[9] == std::uint8_t(-3));
  CHECK(encoded[13] == std::uint8_t(-127));
  std::vector<float> decoded(values.size());
  compression::decode_blockwise(encoded, eight, decoded);
  CHECK(decoded == values);

  const std::vector<float> small{7, -7, 1, 0, -4};  // 4 bits: the grid is the integers too
  const compression::blockwise_format four{.bits = 4, .block = 8};
  std::vector<std::uint8_t> packed(four.encoded_size(small.size()));
  CHECK(packed.size() == 4 + 3);
  compression::encode_blockwise(small, four, packed, 1);
  CHECK(packed[4] == 0x97);  // 7 low, -7 (0x9) high
  CHECK(packed[6] == 0x0C);  // -4 alone in the last byte
  std::vector<float> unpacked(small.size());
  compression::decode_blockwise(packed, four, unpacked);
  CHECK(unpacked == small);
}

TEST_CASE("every value decodes within one step of its block, and the rounding is unbiased") {
  flotilla::random_engine engine(2);
  std::vector<float> values(10'000);
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = float(flotilla::standard_normal(engine) * double(1 + i % 7));
  for (const unsigned width : {8u, 4u}) {
    const compression::blockwise_format format{.bits = width, .block = 64};
    std::vector<std::uint8_t> encoded(format.encoded_size(values.size()));
    compression::encode_blockwise(values, format, encoded, 2);
    std::vector<float> decoded(values.size());
    compression::decode_blockwise(encoded, format, decoded);
    for (std::size_t b = 0; b < values.size(); b += 64) {
      float largest = 0;
      for (std::size_t i = b; i < std::min(values.size(), b + 64); ++i) largest = std::max(largest, std::abs(values[i]));
      const double step = double(largest) / format.levels();
      for (std::size_t i = b; i < std::min(values.size(), b + 64); ++i)
        REQUIRE(std::abs(double(decoded[i]) - double(values[i])) <= step * (1 + 1e-6));
    }
  }
  // 0.3 in a block whose largest is 1, 4 bits: 2.1 levels, so 2 or 3 with probabilities 0.9 and
  // 0.1; over 100,000 draws (seeds) the mean is 0.3 within 5 standard errors (1 / 7 * sqrt(0.09 / 1e5)).
  const compression::blockwise_format four{.bits = 4, .block = 2};
  const std::vector<float> pair{0.3f, 1.0f};
  std::vector<std::uint8_t> encoded(four.encoded_size(2));
  std::vector<float> decoded(2);
  double sum = 0;
  for (int draw = 0; draw < 100'000; ++draw) {
    compression::encode_blockwise(pair, four, encoded, std::uint64_t(draw));
    compression::decode_blockwise(encoded, four, decoded);
    sum += decoded[0];
  }
  const double standard_error = 1.0 / 7 * std::sqrt(0.09 / 1e5);
  CHECK(std::abs(sum / 1e5 - double(0.3f)) < 5 * standard_error);
}

TEST_CASE("corrupted payloads and bad settings are refused with the reason") {
  const compression::blockwise_format format{.bits = 8, .block = 4};
  const std::vector<float> values{1, 2, 3, 4};
  std::vector<std::uint8_t> encoded(format.encoded_size(4));
  compression::encode_blockwise(values, format, encoded, 3);
  std::vector<float> decoded(4);
  auto bad = encoded;
  bad[3] = 0xFF;  // the scale's sign and exponent bits: a negative NaN
  CHECK_THROWS_AS(compression::decode_blockwise(bad, format, decoded), flotilla::decode_error);
  bad = encoded;
  bad[5] = 0x80;  // -128: beyond [-127, 127]
  CHECK_THROWS_WITH_AS(compression::decode_blockwise(bad, format, decoded),
                       "value 1 is coded as -128; the codes run from -127 to 127", flotilla::decode_error);
  bad.pop_back();
  CHECK_THROWS_WITH_AS(compression::decode_blockwise(bad, format, decoded),
                       "a blockwise payload of 7 bytes for 4 values; 8 were expected", flotilla::decode_error);
  const std::vector<float> infinite{1, INFINITY};
  std::vector<std::uint8_t> out(format.encoded_size(2));
  CHECK_THROWS_WITH_AS(compression::encode_blockwise(infinite, format, out, 3),
                       "the update holds a non-finite value at index 1", flotilla::task_error);
  CHECK_THROWS_WITH_AS(compression::blockwise_format{.bits = 5}.validate(), "blockwise quantization has 8 or 4 bits; got 5",
                       flotilla::configuration_error);
}

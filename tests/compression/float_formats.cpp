#include <flotilla/compression/float_formats.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>

// float16 and bfloat16 against their definitions: every one of the 65,536 codes round-trips;
// conversions from float pick the nearest code, ties to even, checked against its neighbours
// for a million floats across every exponent; and the edge cases by value.

namespace compression = flotilla::compression;

namespace {
// Whether `code` is the nearest of its format to x, with ties to the even code.
template <class Decode>
bool nearest(float x, std::uint16_t code, Decode decode) {
  const double here = std::abs(double(decode(code)) - double(x));
  for (const int step : {-1, 1}) {
    const auto other = static_cast<std::uint16_t>(code + step);
    if ((other & 0x7FFFu) == 0x7FFFu || ((other ^ code) & 0x8000u)) continue;  // past the end or across zero
    const float neighbour = decode(other);
    if (std::isnan(neighbour)) continue;
    const double there = std::abs(double(neighbour) - double(x));
    if (there < here || (there == here && (code & 1u))) return false;
  }
  return true;
}
}  // namespace

TEST_CASE("every float16 and bfloat16 code round-trips through float") {
  for (std::uint32_t code = 0; code < 0x10000u; ++code) {
    const auto half = static_cast<std::uint16_t>(code);
    const float f = compression::from_float16(half), b = compression::from_bfloat16(half);
    if (std::isnan(f)) {
      CHECK(std::isnan(compression::from_float16(compression::to_float16(f))));
    } else {
      REQUIRE(compression::to_float16(f) == half);
    }
    if (std::isnan(b)) {
      CHECK(std::isnan(compression::from_bfloat16(compression::to_bfloat16(b))));
    } else {
      REQUIRE(compression::to_bfloat16(b) == half);
    }
  }
}

TEST_CASE("conversions pick the nearest code, ties to even") {
  std::mt19937 engine(7);
  std::uniform_int_distribution<std::uint32_t> bits;
  for (int i = 0; i < 1'000'000; ++i) {
    const float x = std::bit_cast<float>(bits(engine));
    if (std::isnan(x)) continue;
    const auto half = compression::to_float16(x);
    if (std::abs(x) < 65520.0f) REQUIRE(nearest(x, half, compression::from_float16));
    const auto brain = compression::to_bfloat16(x);
    if (!std::isinf(compression::from_bfloat16(brain)) || std::isinf(x)) REQUIRE(nearest(x, brain, compression::from_bfloat16));
  }
}

TEST_CASE("edge cases by value") {
  CHECK(compression::to_float16(1.0f) == 0x3C00);
  CHECK(compression::to_float16(-2.0f) == 0xC000);
  CHECK(compression::to_float16(65504.0f) == 0x7BFF);             // the largest float16
  CHECK(compression::to_float16(65519.99f) == 0x7BFF);            // below the midpoint to infinity
  CHECK(compression::to_float16(65520.0f) == 0x7C00);             // the midpoint rounds to even: infinity
  CHECK(compression::to_float16(std::ldexp(1.0f, -24)) == 0x0001);  // the smallest subnormal
  CHECK(compression::to_float16(std::ldexp(1.0f, -25)) == 0x0000);  // half of it: a tie, to even (zero)
  CHECK(compression::to_float16(std::ldexp(1.5f, -25)) == 0x0001);  // above the tie
  CHECK(compression::to_float16(-0.0f) == 0x8000);
  CHECK(compression::to_float16(1.0f + std::ldexp(1.0f, -11)) == 0x3C00);  // a tie between 1 and 1 + 2^-10: even
  CHECK(compression::to_float16(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3C02);  // a tie: up to even
  CHECK(compression::to_float16(std::numeric_limits<float>::infinity()) == 0x7C00);
  CHECK(std::isnan(compression::from_float16(compression::to_float16(std::numeric_limits<float>::quiet_NaN()))));
  CHECK(compression::from_float16(0x0001) == std::ldexp(1.0f, -24));
  CHECK(compression::from_float16(0x03FF) == std::ldexp(1023.0f, -24));  // the largest subnormal
  CHECK(compression::to_bfloat16(1.0f) == 0x3F80);
  CHECK(compression::to_bfloat16(std::bit_cast<float>(0x3F808000u)) == 0x3F80);  // a tie: down to even
  CHECK(compression::to_bfloat16(std::bit_cast<float>(0x3F818000u)) == 0x3F82);  // a tie: up to even
  CHECK(compression::to_bfloat16(std::numeric_limits<float>::max()) == 0x7F80);   // rounds up to infinity
  CHECK(std::isnan(compression::from_bfloat16(compression::to_bfloat16(std::bit_cast<float>(0x7F800001u)))));
}

TEST_CASE("the bulk conversions, eight at a time where the processor can, give the scalar bits") {
  std::vector<std::uint16_t> codes(65536);
  for (std::size_t c = 0; c < codes.size(); ++c) codes[c] = std::uint16_t(c);
  std::vector<float> decoded(65536);
  compression::convert_from_float16(codes.data(), decoded);
  for (std::size_t c = 0; c < codes.size(); ++c)
    REQUIRE(std::bit_cast<std::uint32_t>(decoded[c]) == std::bit_cast<std::uint32_t>(compression::from_float16(std::uint16_t(c))));
  // Every float16 boundary region (each code's float and its neighbours, halfway points
  // included), and a million random bit patterns: NaNs, infinities and subnormals among them.
  std::vector<float> inputs;
  for (std::size_t c = 0; c < 65536; ++c) {
    const auto bits = std::bit_cast<std::uint32_t>(compression::from_float16(std::uint16_t(c)));
    for (const std::uint32_t near : {bits - 1, bits, bits + 1, bits + 0x1000, bits + 0xFFF, bits + 0x1001})
      inputs.push_back(std::bit_cast<float>(near));
  }
  std::mt19937 engine(9);
  for (int i = 0; i < 1'000'000; ++i) inputs.push_back(std::bit_cast<float>(std::uint32_t(engine())));
  std::vector<std::uint16_t> half(inputs.size()), brain(inputs.size());
  compression::convert_to_float16(inputs, half.data());
  compression::convert_to_bfloat16(inputs, brain.data());
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    REQUIRE(half[i] == compression::to_float16(inputs[i]));
    REQUIRE(brain[i] == compression::to_bfloat16(inputs[i]));
  }
}

#include <flotilla/compression/codec.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <vector>

// The codecs as the wire names and uses them: text forms that read back, unknown names refused
// by name, every check's reason, and slices decoded into an accumulator equal to the whole.

namespace compression = flotilla::compression;
using compression::codec;

TEST_CASE("codecs are named by their text form, and an unknown one is refused by name") {
  CHECK(compression::parse_codec("float16").kind == codec::float16);
  CHECK(compression::parse_codec("int8").name() == "int8:256");
  CHECK(compression::parse_codec("int4:64").block == 64);
  CHECK(compression::parse_codec("top_k:0.01").name() == "top_k:0.01");
  CHECK(compression::parse_codec("top_k").fraction == 0.01);
  for (const char* name : {"none", "float16", "bfloat16", "int8:128", "int4:32", "top_k:0.125"})
    CHECK(compression::parse_codec(compression::parse_codec(name).name()).name() == name);
  CHECK_THROWS_WITH_AS((void)compression::parse_codec("zstd"),
                       "unknown codec 'zstd'; the codecs are none, float16, bfloat16, int8[:block], int4[:block] and top_k[:fraction]",
                       flotilla::configuration_error);
  CHECK_THROWS_WITH_AS((void)compression::parse_codec("int8:x"), "codec 'int8:x': 'x' is not a block size",
                       flotilla::configuration_error);
  CHECK_THROWS_WITH_AS((void)compression::parse_codec("float16:3"), "codec 'float16:3': '3' is not a setting it takes",
                       flotilla::configuration_error);
  CHECK_THROWS_WITH_AS((void)compression::parse_codec("top_k:0.75"), "top_k's fraction must be in (0, 0.5]; got 0.750000",
                       flotilla::configuration_error);
  CHECK_THROWS_WITH_AS((void)compression::parse_codec("int4:1"), "a block holds 2 to 2^20 values; got 1",
                       flotilla::configuration_error);
  // Settings a codec does not use do not make two specs differ.
  CHECK(compression::codec_spec{.kind = codec::float16, .block = 3} == compression::codec_spec{.kind = codec::float16});
  CHECK(!(compression::parse_codec("int8:64") == compression::parse_codec("int8:128")));
}

TEST_CASE("sizes on the wire against float32") {
  const std::uint64_t n = 1'000'000;
  CHECK(compression::parse_codec("float16").max_bytes(n) == 2 * n);
  CHECK(compression::parse_codec("int8").max_bytes(n) == n + 4 * 3907);  // ceil(1e6 / 256) scales
  CHECK(compression::parse_codec("int4").max_bytes(n) == n / 2 + 4 * 3907);
  CHECK(compression::parse_codec("top_k:0.01").max_bytes(n) == 16 + 8 * 10'000);
}

TEST_CASE("float16 and bfloat16 values decode to their nearest codes, and a slice adds into an accumulator") {
  const std::vector<float> values{1.0f, -2.5f, 0.1f, 65504.0f, 3.0e-8f};
  const auto half = compression::encode(values, compression::parse_codec("float16"), 0);
  REQUIRE(half.bytes.size() == 10);
  CHECK(half.bytes[0] == 0x00);
  CHECK(half.bytes[1] == 0x3C);  // 1.0 is 0x3C00
  CHECK(!compression::check(half, half.spec, 5));
  std::vector<float> out(5);
  compression::decode(half, out);
  CHECK(out[1] == -2.5f);
  CHECK(out[2] == 0.0999755859375f);  // 0x2E66, float16's nearest to 0.1
  CHECK(out[3] == 65504.0f);
  CHECK(out[4] == 0x1p-24f);  // above half the smallest subnormal (2^-25 = 2.98e-8), so up to it
  // bfloat16 keeps 8 bits of precision: 0.1 becomes 0x3DCD, 0.10009765625.
  const auto brain = compression::encode(values, compression::parse_codec("bfloat16"), 0);
  compression::decode(brain, out);
  CHECK(out[2] == 0.10009765625f);
  // Into an accumulator: 10 + 2 * value, for values 1 to 3 only.
  std::vector<float> accumulator{10, 10, 10};
  compression::add_decoded(half, 1, accumulator, 2.0f);
  CHECK(accumulator == std::vector<float>{10 - 5.0f, 10 + 2 * 0.0999755859375f, 10 + 2 * 65504.0f});
}

TEST_CASE("slices decoded into an accumulator equal the whole update, for every codec") {
  std::vector<float> values(1000);
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = std::sin(float(i)) * float(1 + i % 13);
  for (const char* name : {"float16", "bfloat16", "int8:64", "int4:100", "top_k:0.05"}) {
    CAPTURE(name);
    const auto spec = compression::parse_codec(name);
    compression::top_k_encoder encoder(spec.fraction);
    const auto coded = spec.kind == codec::top_k ? compression::encode(values, encoder, spec) : compression::encode(values, spec, 7);
    REQUIRE(coded.bytes.size() <= spec.max_bytes(values.size()));
    REQUIRE(!compression::check(coded, spec, values.size()));
    std::vector<float> whole(values.size());
    compression::decode(coded, whole);
    // Slices of 37 that straddle blocks and sparse entries, weighted by 0.5.
    std::vector<float> sliced(values.size(), 1.0f);
    for (std::size_t begin = 0; begin < values.size(); begin += 37) {
      const auto size = std::min<std::size_t>(37, values.size() - begin);
      compression::add_decoded(coded, begin, std::span(sliced).subspan(begin, size), 0.5f);
    }
    for (std::size_t i = 0; i < values.size(); ++i) REQUIRE(sliced[i] == 1.0f + 0.5f * whole[i]);
  }
}

TEST_CASE("a coded update that is not what the round asked for is refused with the reason") {
  const std::vector<float> values{1, 2, 3, 4};
  const auto int8 = compression::parse_codec("int8:2");
  auto coded = compression::encode(values, int8, 1);
  CHECK(*compression::check(coded, compression::parse_codec("int8:4"), 4) == "values coded as int8:2; the round uses int8:4");
  CHECK(*compression::check(coded, int8, 5) == "coded values hold 4 values; the parameters hold 5");
  coded.bytes[0] = 0xFF;  // a scale's low byte: still a valid scale
  CHECK(!compression::check(coded, int8, 4));
  coded.bytes[3] = 0xFF;  // its sign and exponent: a NaN
  CHECK(compression::check(coded, int8, 4)->starts_with("block 0 has the scale"));
  auto half = compression::encode(values, compression::parse_codec("float16"), 0);
  half.bytes[3] = 0x7C;  // value 1 becomes 0x7C00: infinity
  half.bytes[2] = 0x00;
  CHECK(*compression::check(half, half.spec, 4) == "coded value 1 is not finite");
  half.bytes.pop_back();
  CHECK(*compression::check(half, half.spec, 4) == "float16 values take 2 bytes each: 7 bytes for 4 values");
  const auto top = compression::parse_codec("top_k:0.25");  // at most one entry of four
  const auto two = compression::encode_sparse({4, {0, 2}, {1, 3}});
  CHECK(*compression::check({top, 4, {two.begin(), two.end()}}, top, 4) == "a sparse update of 2 entries; the round's codec sends at most 1");
  CHECK(*compression::check({}, {}, 0) == "values coded as none carry nothing");
  const std::vector<float> infinite{1, INFINITY};
  CHECK_THROWS_WITH_AS((void)compression::encode(infinite, int8, 1), "the update holds a non-finite value at index 1",
                       flotilla::task_error);
}

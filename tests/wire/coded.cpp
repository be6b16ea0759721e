#include <flotilla/wire/messages.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

// Coded parameters and updates on the wire (format 5): the reply codec named in every task, the
// task's parameters carried coded and decoded into their layout, coded replies, and every
// malformed or unknown codec refused by name.

namespace compression = flotilla::compression;
using flotilla::decode_error;
using params = flotilla::parameters<float>;

namespace {

params sample(std::size_t rows = 30) {
  params p(flotilla::tensor_layout({{"w", {rows, 10}}, {"b", {10}}}));
  for (std::size_t i = 0; i < p.size(); ++i) p.values()[i] = 0.01f * float(i % 97) - 0.3f;
  return p;
}

flotilla::task<params> coded_task(const params& global, const char* codec) {
  auto coded = std::make_shared<const compression::coded_values>(compression::encode(global.values(), compression::parse_codec(codec), 5));
  auto lossy = std::make_shared<params>(global);
  compression::decode(*coded, lossy->values());
  return {.kind = flotilla::task_kind::fit, .round = 4, .parameters = std::move(lossy), .config = {.round = 4, .seed = 9},
          .payload = {}, .reply_codec = compression::parse_codec("top_k:0.1"), .coded_parameters = std::move(coded)};
}

// Replaces the first occurrence of `from` in `bytes` by `to`, of the same length.
void replace_text(flotilla::byte_buffer& bytes, const std::string& from, const std::string& to) {
  const auto* begin = reinterpret_cast<const char*>(bytes.data());
  const std::string_view all(begin, bytes.size());
  const auto at = all.find(from);
  REQUIRE(at != std::string_view::npos);
  std::memcpy(bytes.data() + at, to.data(), to.size());
}

}  // namespace

TEST_CASE("a coded task carries its parameters in the codec's bytes and decodes into their layout") {
  const auto global = sample();
  for (const char* codec : {"float16", "bfloat16", "int8:64", "int4:32"}) {
    CAPTURE(codec);
    const auto work = coded_task(global, codec);
    const auto bytes = flotilla::encode(work);
    const auto plain = flotilla::encode(flotilla::task<params>{.kind = flotilla::task_kind::fit, .round = 4,
                                                              .parameters = work.parameters, .config = work.config});
    // The float32 block is gone; the codec's bytes and its name took its place.
    CHECK(bytes.size() < plain.size() - global.values().size_bytes() + work.coded_parameters->bytes.size() + 64);
    const auto decoded = flotilla::decode_task<params>(bytes);
    REQUIRE(decoded.parameters);
    CHECK(*decoded.parameters == *work.parameters);  // the learner sees what the coordinator decoded
    CHECK(decoded.parameters->layout() == global.layout());
    REQUIRE(decoded.coded_parameters);
    CHECK(decoded.coded_parameters->bytes == work.coded_parameters->bytes);
    CHECK(decoded.reply_codec.name() == "top_k:0.1");
    // The same bytes from a gathered encoding and from a streaming decode of the first half.
    const auto gathered = flotilla::encode_gathered(work);
    CHECK(gathered.blocks.empty());
    CHECK(std::ranges::equal(gathered.bytes, bytes));
    auto started = flotilla::decode_task_start<params>(std::span(bytes).first(bytes.size() / 2), bytes.size());
    CHECK_FALSE(started);  // the coded bytes are needed whole
    started = flotilla::decode_task_start<params>(bytes, bytes.size());
    REQUIRE(started);
    CHECK(started->rest_bytes == 0);
    CHECK(*started->message.parameters == *work.parameters);
  }
}

TEST_CASE("a coded reply carries the learner's change and nothing else") {
  std::vector<float> change(310);
  for (std::size_t i = 0; i < change.size(); ++i) change[i] = i % 31 == 0 ? float(i) : 0.001f;
  const auto spec = compression::parse_codec("top_k:0.1");
  compression::top_k_encoder encoder(spec.fraction);
  const flotilla::reply<params> answer{.learner = 3, .kind = flotilla::task_kind::fit, .round = 4,
                                       .result = {.examples = 10, .metrics = {}}, .parameters = std::nullopt,
                                       .payload = {}, .coded_update = compression::encode(change, encoder, spec)};
  const auto bytes = flotilla::encode(answer);
  const auto decoded = flotilla::decode_reply<params>(bytes);
  CHECK_FALSE(decoded.parameters);
  REQUIRE(decoded.coded_update);
  CHECK(decoded.coded_update->spec == spec);
  CHECK(decoded.coded_update->count == 310);
  CHECK(decoded.coded_update->bytes == answer.coded_update->bytes);
  CHECK(bytes.size() < 16 + 8 * 31 + 128);  // 31 entries, against 1,240 bytes of float32
}

TEST_CASE("unknown codecs are refused by name, and coded bytes are bounded before allocation") {
  const auto work = coded_task(sample(), "int8:64");
  auto bytes = flotilla::encode(work);
  auto unknown = bytes;
  replace_text(unknown, "top_k:0.1", "zstd:0.01");
  CHECK_THROWS_WITH_AS((void)flotilla::decode_task<params>(unknown),
                       "the task asks for replies in unknown codec 'zstd:0.01'; the codecs are none, float16, bfloat16, "
                       "int8[:block], int4[:block] and top_k[:fraction]",
                       decode_error);
  unknown = bytes;
  replace_text(unknown, "int8:64", "lz4:640");
  CHECK_THROWS_WITH_AS((void)flotilla::decode_task<params>(unknown),
                       "unknown codec 'lz4:640'; the codecs are none, float16, bfloat16, int8[:block], int4[:block] and "
                       "top_k[:fraction]",
                       decode_error);
  // Coded values for more scalars than the reader allows.
  flotilla::decode_limits limits;
  limits.max_scalars = 100;
  CHECK_THROWS_WITH_AS((void)flotilla::decode_task<params>(bytes, limits), "coded values hold 310 values; the limit is 100",
                       decode_error);
  // A byte count beyond what int8:64 takes for 310 values (310 + 4 * 5 = 330).
  auto lying = bytes;
  const auto* text = reinterpret_cast<const char*>(lying.data());
  const auto at = std::string_view(text, lying.size()).find("int8:64") + 7 + 8;  // the name, then the count
  std::uint64_t size = 0;
  std::memcpy(&size, lying.data() + at, 8);
  CHECK(size == 330);
  size = 331;
  std::memcpy(lying.data() + at, &size, 8);
  CHECK_THROWS_WITH_AS((void)flotilla::decode_task<params>(lying), "coded byte count is 331; the limit is 330", decode_error);
  // A scale made a NaN: refused as the parameters are decoded.
  auto corrupt = bytes;
  corrupt[at + 8 + 3] = std::byte{0xFF};
  CHECK_THROWS_WITH_AS((void)flotilla::decode_task<params>(corrupt),
                       doctest::Contains("parameter values: block 0 has the scale"), decode_error);
  // Coded values standing for parameters of another size.
  auto other = coded_task(sample(), "float16");
  other.parameters = std::make_shared<const params>(sample(31));
  CHECK_THROWS_WITH_AS((void)flotilla::encode(other),
                       "a coded block of 310 values stands for a block of 320: a parameter codec that writes its "
                       "values in several blocks cannot travel coded",
                       flotilla::usage_error);
  // An unknown parameters form.
  auto form = flotilla::encode(flotilla::reply<params>{.learner = 1, .kind = flotilla::task_kind::fit, .round = 1,
                                                        .result = {.examples = 1, .metrics = {}}});
  form.back() = std::byte{3};
  CHECK_THROWS_WITH_AS((void)flotilla::decode_reply<params>(form), "parameters form 3 is unknown", decode_error);
  // Coded values that name the codec none.
  auto none = flotilla::encode(flotilla::reply<params>{
      .learner = 1, .kind = flotilla::task_kind::fit, .round = 1, .result = {.examples = 1, .metrics = {}},
      .parameters = std::nullopt, .payload = {}, .coded_update = compression::coded_values{compression::parse_codec("float16"), 0, {}}});
  replace_text(none, "float16", "none:16");
  CHECK_THROWS_WITH_AS((void)flotilla::decode_reply<params>(none), doctest::Contains("codec 'none:16'"), decode_error);
}

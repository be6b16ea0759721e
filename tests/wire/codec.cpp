#include <flotilla/wire/messages.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <sstream>
#include <memory>
#include <span>
#include <string>
#include <vector>

using flotilla::decode_error;

namespace {

flotilla::parameters<float> sample() {
  flotilla::parameters<float> p(flotilla::tensor_layout({{"layer0.weight", {3, 2}}, {"layer0.bias", {3}}}));
  for (std::size_t i = 0; i < p.size(); ++i) p.values()[i] = 0.5f * float(i) - 1.0f;
  return p;
}

// Overwrites bytes [at, at + sizeof value) with value, little-endian as cereal wrote it.
template <class T>
void poke(flotilla::byte_buffer& bytes, std::size_t at, T value) {
  std::memcpy(bytes.data() + at, &value, sizeof value);
}

// Offsets in an encoded parameter set: cereal's endianness byte, then magic(4), version(2),
// content(1), scalar size(1), tensor count(8).
constexpr std::size_t version_at = 1 + 4;
constexpr std::size_t tensor_count_at = 1 + 4 + 2 + 1 + 1;

}  // namespace

TEST_CASE("parameters round-trip bit for bit") {
  const auto original = sample();
  const auto bytes = flotilla::encode(original);
  const auto decoded = flotilla::decode<flotilla::parameters<float>>(bytes);
  CHECK(decoded == original);
  CHECK(decoded.layout().tensors()[0].name == "layer0.weight");
}

TEST_CASE("the scalar payload is one block after a small header") {
  const auto p = sample();
  const auto bytes = flotilla::encode(p);
  // header: 1 endianness + 4 magic + 2 version + 1 content + 1 scalar size + 8 tensor count
  // per tensor: 4 name length + name + 8 rank + 8 per dimension; then 8 scalar count + payload.
  const std::size_t header = 1 + 4 + 2 + 1 + 1 + 8;
  const std::size_t tensors = (4 + 13 + 8 + 16) + (4 + 11 + 8 + 8);
  REQUIRE(bytes.size() == header + tensors + 8 + p.size() * sizeof(float));
  CHECK(std::memcmp(bytes.data() + bytes.size() - p.size() * sizeof(float), p.values().data(),
                    p.size() * sizeof(float)) == 0);
}

TEST_CASE("every truncation of a valid buffer is a decode_error") {
  const auto bytes = flotilla::encode(sample());
  for (std::size_t size = 0; size < bytes.size(); ++size) {
    CAPTURE(size);
    CHECK_THROWS_AS((void)flotilla::decode<flotilla::parameters<float>>(std::span(bytes).first(size)), decode_error);
  }
  CHECK_THROWS_WITH_AS((void)flotilla::decode<flotilla::parameters<float>>(std::span(bytes).first(0)),
                       "truncated input: no bytes to decode", decode_error);
}

TEST_CASE("a wrong magic number or format version is named") {
  auto bytes = flotilla::encode(sample());
  auto wrong_version = bytes;
  poke<std::uint16_t>(wrong_version, version_at, 7);
  CHECK_THROWS_WITH_AS((void)flotilla::decode<flotilla::parameters<float>>(wrong_version),
                       "message has format version 7; this build reads version 5", decode_error);
  auto wrong_magic = bytes;
  poke<std::uint32_t>(wrong_magic, 1, 0xDEADBEEF);
  CHECK_THROWS_WITH_AS((void)flotilla::decode<flotilla::parameters<float>>(wrong_magic),
                       "not a Flotilla message: wrong magic number", decode_error);
}

TEST_CASE("absurd sizes are rejected before anything is allocated") {
  auto bytes = flotilla::encode(sample());
  SUBCASE("a tensor count beyond the limit") {
    poke<std::uint64_t>(bytes, tensor_count_at, std::uint64_t{1} << 40);
    CHECK_THROWS_WITH_AS((void)flotilla::decode<flotilla::parameters<float>>(bytes),
                         "tensor count is 1,099,511,627,776; the limit is 65,536", decode_error);
  }
  SUBCASE("a tensor count the remaining bytes cannot hold") {
    poke<std::uint64_t>(bytes, tensor_count_at, 60000);
    CHECK_THROWS_WITH((void)flotilla::decode<flotilla::parameters<float>>(bytes),
                      doctest::Contains("tensor count is 60,000 but only"));
  }
  SUBCASE("dimensions whose product overflows the scalar limit") {
    // First tensor's first dimension sits after its name (4 + 13 bytes) and rank (8 bytes).
    poke<std::uint64_t>(bytes, tensor_count_at + 8 + 4 + 13 + 8, std::uint64_t{1} << 62);
    CHECK_THROWS_WITH((void)flotilla::decode<flotilla::parameters<float>>(bytes),
                      doctest::Contains("scalars, the limit"));
  }
  SUBCASE("a layout larger than the remaining payload") {
    // A layout of 2^30 scalars (within the default limit) whose payload is absent.
    poke<std::uint64_t>(bytes, tensor_count_at + 8 + 4 + 13 + 8, std::uint64_t{1} << 29);
    CHECK_THROWS_WITH((void)flotilla::decode<flotilla::parameters<float>>(bytes),
                      doctest::Contains("its layout describes"));
  }
  SUBCASE("a configured limit smaller than the message") {
    CHECK_THROWS_WITH((void)flotilla::decode<flotilla::parameters<float>>(bytes, {.max_scalars = 8}),
                      doctest::Contains("the limit"));
  }
  SUBCASE("an overlong name") {
    CHECK_THROWS_WITH_AS((void)flotilla::decode<flotilla::parameters<float>>(bytes, {.max_string = 4}),
                         "tensor name is 13 bytes long; the limit is 4", decode_error);
  }
}

TEST_CASE("scalar width, content type and trailing bytes are checked") {
  const auto doubles = flotilla::encode(flotilla::parameters<double>(flotilla::tensor_layout({{"w", {2}}})));
  CHECK_THROWS_WITH_AS((void)flotilla::decode<flotilla::parameters<float>>(doubles),
                       "parameters hold 64-bit scalars; this side expects 32-bit", decode_error);
  auto extra = flotilla::encode(sample());
  extra.push_back(std::byte{0});
  CHECK_THROWS_WITH_AS((void)flotilla::decode<flotilla::parameters<float>>(extra),
                       "1 unexpected bytes after the end of the message", decode_error);
  const auto parameters_bytes = flotilla::encode(sample());
  CHECK_THROWS_WITH_AS((void)flotilla::decode_task<flotilla::parameters<float>>(parameters_bytes),
                       "message holds content type 1; expected 2", decode_error);
}

TEST_CASE("tasks round-trip with their configuration") {
  flotilla::task<flotilla::parameters<float>> work{
      .kind = flotilla::task_kind::fit,
      .round = 12,
      .parameters = std::make_shared<const flotilla::parameters<float>>(sample()),
      .config = {.round = 12, .seed = 99, .values = {{"epochs", 2}, {"learning_rate", 0.05}}}};
  const auto decoded = flotilla::decode_task<flotilla::parameters<float>>(flotilla::encode(work));
  CHECK(decoded.kind == flotilla::task_kind::fit);
  CHECK(decoded.round == 12);
  CHECK(decoded.config.seed == 99);
  CHECK(decoded.config.values == work.config.values);
  REQUIRE(decoded.parameters);
  CHECK(*decoded.parameters == sample());
}

TEST_CASE("replies round-trip with or without parameters") {
  flotilla::reply<flotilla::parameters<float>> answer{.learner = 7,
                                                      .kind = flotilla::task_kind::evaluate,
                                                      .round = 3,
                                                      .result = {.examples = -5, .metrics = {{"accuracy", 0.75}}},
                                                      .parameters = std::nullopt};
  auto decoded = flotilla::decode_reply<flotilla::parameters<float>>(flotilla::encode(answer));
  CHECK(decoded.learner == 7);
  CHECK(decoded.kind == flotilla::task_kind::evaluate);
  CHECK(decoded.round == 3);
  CHECK(decoded.result.examples == -5);  // carried as is: the coordinator rejects it, not the codec
  CHECK(decoded.result.metrics == answer.result.metrics);
  CHECK_FALSE(decoded.parameters);
  answer.parameters = sample();
  decoded = flotilla::decode_reply<flotilla::parameters<float>>(flotilla::encode(answer));
  REQUIRE(decoded.parameters);
  CHECK(*decoded.parameters == sample());
}

TEST_CASE("stage payloads travel with tasks and replies, bounded by the reader's limit and the bytes left") {
  using params = flotilla::parameters<float>;
  const flotilla::task<params> work{.kind = flotilla::custom_task_kind(1), .round = 4, .payload = {1, 2, 3, 250}};
  const auto task_bytes = flotilla::encode(work);
  CHECK(flotilla::decode_task<params>(task_bytes).payload == std::vector<std::uint8_t>{1, 2, 3, 250});
  CHECK_THROWS_WITH_AS((void)flotilla::decode_task<params>(task_bytes, {.max_payload = 3}),
                       "payload size is 4; the limit is 3", decode_error);

  flotilla::reply<params> answer{.learner = 2, .kind = flotilla::custom_task_kind(1), .round = 4, .result = {1, {}},
                                 .parameters = sample(), .payload = std::vector<std::uint8_t>(1000, 7)};
  auto reply_bytes = flotilla::encode(answer);
  const auto decoded = flotilla::decode_reply<params>(reply_bytes);
  CHECK(decoded.payload == answer.payload);
  REQUIRE(decoded.parameters);
  CHECK(*decoded.parameters == sample());
  // The payload's size field, after the header, the ids and an empty metric map: claim more
  // bytes than the message holds.
  const auto at = std::size_t(1 + 4 + 2 + 1 + 8 + 1 + 8 + 8 + 8);
  std::uint64_t claimed = 0;
  std::memcpy(&claimed, reply_bytes.data() + at, 8);
  REQUIRE(claimed == 1000);
  claimed = std::uint64_t{1} << 33;  // within the default limit of 2^34
  std::memcpy(reply_bytes.data() + at, &claimed, 8);
  CHECK_THROWS_WITH_AS((void)flotilla::decode_reply<params>(reply_bytes),
                       doctest::Contains("payload size is 8,589,934,592 but only"), decode_error);
}

TEST_CASE("task kind 0 and repeated metric names are rejected; any other kind is carried") {
  flotilla::reply<flotilla::parameters<float>> answer{.learner = 1, .kind = flotilla::task_kind::fit, .round = 1,
                                                      .result = {.examples = 1, .metrics = {{"a", 1.0}, {"b", 2.0}}},
                                                      .parameters = std::nullopt};
  auto bytes = flotilla::encode(answer);
  auto bad_kind = bytes;
  bad_kind[1 + 4 + 2 + 1 + 8] = std::byte{0};  // after the envelope and the learner id
  CHECK_THROWS_WITH_AS((void)flotilla::decode_reply<flotilla::parameters<float>>(bad_kind),
                       "task kind 0 names no task", decode_error);
  auto custom = bytes;
  custom[1 + 4 + 2 + 1 + 8] = std::byte{17};  // the open set: a user's stage
  CHECK(flotilla::decode_reply<flotilla::parameters<float>>(custom).kind == flotilla::custom_task_kind(1));
  // Rename metric "b" to "a": the second key's single character follows its length.
  auto repeated = bytes;
  for (std::size_t i = 0; i + 1 < repeated.size(); ++i)
    if (repeated[i] == std::byte{'b'}) repeated[i] = std::byte{'a'};
  CHECK_THROWS_WITH_AS((void)flotilla::decode_reply<flotilla::parameters<float>>(repeated),
                       "metric count repeats a key", decode_error);
}

namespace {

using params = flotilla::parameters<float>;

// A reply whose scalars (20,000 floats, 80 KB) are over wire_writer's threshold for leaving a
// block in place.
flotilla::reply<params> large_reply() {
  params p(flotilla::tensor_layout({{"w", {100, 200}}}));
  for (std::size_t i = 0; i < p.size(); ++i) p.values()[i] = float(i) / 7.0f;
  return {.learner = 4, .kind = flotilla::task_kind::fit, .round = 9, .result = {.examples = 60, .metrics = {{"loss", 0.5}}},
          .parameters = std::move(p)};
}

std::vector<std::byte> joined(const flotilla::gathered_encoding& encoding) {
  std::vector<std::byte> bytes;
  encoding.for_each_piece([&](std::span<const std::byte> piece) { bytes.insert(bytes.end(), piece.begin(), piece.end()); });
  return bytes;
}

}  // namespace

TEST_CASE("a gathered encoding is the contiguous encoding with large blocks left in place") {
  const auto answer = large_reply();
  const auto whole = flotilla::encode(answer);
  const auto gathered = flotilla::encode_gathered(answer);
  REQUIRE(gathered.blocks.size() == 1);
  CHECK(gathered.blocks[0].bytes.data() == static_cast<const void*>(answer.parameters->values().data()));
  CHECK(gathered.blocks[0].bytes.size() == 80'000);
  CHECK(gathered.blocks[0].offset == whole.size() - 80'000);  // the scalars end the message
  CHECK(gathered.bytes.size() == whole.size() - 80'000);
  CHECK(std::ranges::equal(joined(gathered), whole));

  const flotilla::task<params> work{.kind = flotilla::task_kind::fit, .round = 2,
                                    .parameters = std::make_shared<const params>(*answer.parameters),
                                    .config = {.round = 2, .seed = 5}};
  const auto task_gathered = flotilla::encode_gathered(work);
  REQUIRE(task_gathered.blocks.size() == 1);
  CHECK(task_gathered.blocks[0].bytes.data() == static_cast<const void*>(work.parameters->values().data()));
  CHECK(std::ranges::equal(joined(task_gathered), flotilla::encode(work)));

  // Below the threshold everything is copied inline.
  const flotilla::reply<params> small{.learner = 1, .kind = flotilla::task_kind::fit, .round = 1,
                                      .result = {.examples = 1, .metrics = {}}, .parameters = sample()};
  const auto small_gathered = flotilla::encode_gathered(small);
  CHECK(small_gathered.blocks.empty());
  CHECK(std::ranges::equal(small_gathered.bytes, flotilla::encode(small)));
}

TEST_CASE("a message is decoded from its first bytes and its scalars land in place") {
  const auto answer = large_reply();
  const auto bytes = flotilla::encode(answer);
  const std::size_t prefix = bytes.size() - 80'000;  // everything before the scalars
  // Split before the scalars, one byte in, inside the second scalar, and with all bytes there.
  for (const std::size_t first : {prefix, prefix + 1, prefix + 6, std::size_t{50'000}, bytes.size()}) {
    CAPTURE(first);
    auto started = flotilla::decode_reply_start<params>(std::span(bytes).first(first), bytes.size());
    REQUIRE(started);
    auto& message = started->message;
    CHECK(message.learner == 4);
    CHECK(message.round == 9);
    CHECK(message.result.metrics == answer.result.metrics);
    REQUIRE(message.parameters);
    CHECK(started->rest().size() == bytes.size() - first);
    if (!started->rest().empty())
      CHECK(started->rest().data() == reinterpret_cast<std::byte*>(message.parameters->values().data()) + (first - prefix));
    std::ranges::copy(std::span(bytes).subspan(first), started->rest().begin());
    CHECK(*message.parameters == *answer.parameters);
  }
}

TEST_CASE("first bytes that end before the scalars ask for the whole message") {
  const auto answer = large_reply();
  const auto bytes = flotilla::encode(answer);
  const std::size_t prefix = bytes.size() - 80'000;
  for (const std::size_t first : {std::size_t{0}, std::size_t{1}, std::size_t{10}, prefix - 9, prefix - 1}) {
    CAPTURE(first);
    CHECK_FALSE(flotilla::decode_reply_start<params>(std::span(bytes).first(first), bytes.size()));
  }
  // A message without parameters has nothing to receive in place.
  const flotilla::reply<params> bare{.learner = 2, .kind = flotilla::task_kind::evaluate, .round = 1,
                                     .result = {.examples = 3, .metrics = {{"accuracy", 0.5}}}, .parameters = {}};
  const auto bare_bytes = flotilla::encode(bare);
  CHECK_FALSE(flotilla::decode_reply_start<params>(std::span(bare_bytes).first(bare_bytes.size() - 1), bare_bytes.size()));
  auto complete = flotilla::decode_reply_start<params>(bare_bytes, bare_bytes.size());
  REQUIRE(complete);
  CHECK(complete->rest().empty());
  CHECK(complete->message.result.metrics == bare.result.metrics);
  // A task's scalars land in place too.
  const flotilla::task<params> work{.kind = flotilla::task_kind::fit, .round = 2,
                                    .parameters = std::make_shared<const params>(*answer.parameters),
                                    .config = {.round = 2, .seed = 5}};
  const auto task_bytes = flotilla::encode(work);
  auto started = flotilla::decode_task_start<params>(std::span(task_bytes).first(1000), task_bytes.size());
  REQUIRE(started);
  CHECK(started->rest().size() == task_bytes.size() - 1000);
  std::ranges::copy(std::span(task_bytes).subspan(1000), started->rest().begin());
  CHECK(*started->message.parameters == *work.parameters);
}

TEST_CASE("first bytes are checked as strictly as a whole message, lengths against the whole") {
  const auto bytes = flotilla::encode(large_reply());
  const std::size_t prefix = bytes.size() - 80'000;
  auto wrong_magic = bytes;
  wrong_magic[1] = std::byte{'X'};
  CHECK_THROWS_WITH_AS((void)flotilla::decode_reply_start<params>(std::span(wrong_magic).first(prefix), bytes.size()),
                       "not a Flotilla message: wrong magic number", decode_error);
  // One scalar more than the message holds: refused against the bytes still to come.
  auto overlong = bytes;
  poke(overlong, prefix - 8, std::uint64_t{20'001});
  CHECK_THROWS_WITH_AS((void)flotilla::decode_reply_start<params>(std::span(overlong).first(prefix), bytes.size()),
                       "scalar count is 20,001 but only 80,000 bytes remain (truncated or corrupt input)", decode_error);
  // Bytes after the scalars: the message is decoded whole, which names the trailing bytes.
  CHECK_FALSE(flotilla::decode_reply_start<params>(std::span(bytes).first(prefix), bytes.size() + 3));
}

TEST_CASE("a message in the other byte order is decoded whole, never landed unswapped") {
  // The same reply as large_reply(), written big-endian field by field as wire_writer would.
  const auto answer = large_reply();
  std::ostringstream out;
  {
    cereal::PortableBinaryOutputArchive archive(out, cereal::PortableBinaryOutputArchive::Options::BigEndian());
    const std::string name = "w", key = "loss";
    archive(flotilla::wire_magic, flotilla::wire_format_version, std::uint8_t{3});
    archive(answer.learner, std::uint8_t{1}, answer.round, answer.result.examples);
    archive(std::uint64_t{1}, std::uint32_t(key.size()), cereal::binary_data(key.data(), key.size()), 0.5);
    archive(std::uint64_t{0});  // no stage payload
    archive(std::uint8_t{1}, std::uint8_t{4}, std::uint64_t{1}, std::uint32_t(name.size()),
            cereal::binary_data(name.data(), name.size()), std::uint64_t{2}, std::uint64_t{100}, std::uint64_t{200});
    archive(std::uint64_t{20'000}, cereal::binary_data(answer.parameters->values().data(), 80'000));
  }
  const auto text = out.str();
  const auto bytes = std::as_bytes(std::span(text.data(), text.size()));
  REQUIRE(bytes.size() == flotilla::encode(answer).size());
  CHECK_FALSE(flotilla::decode_reply_start<params>(bytes.first(bytes.size() - 40'000), bytes.size()));
  const auto decoded = flotilla::decode_reply<params>(bytes);
  REQUIRE(decoded.parameters);
  CHECK(*decoded.parameters == *answer.parameters);
}

namespace {
// A parameter type whose layout is its count and that is made from it: the library's codec.
class counted {
 public:
  using scalar_type = double;
  counted() = default;
  explicit counted(std::size_t n) : v_(n) {}
  std::span<double> values() { return v_; }
  std::span<const double> values() const { return v_; }
  std::size_t layout() const { return v_.size(); }

 private:
  std::vector<double> v_;
};
static_assert(flotilla::CountedParameters<counted>);
static_assert(flotilla::WireCodable<counted>);

// The same contract, broken: made for n, it holds one more.
class miscounted {
 public:
  using scalar_type = double;
  miscounted() = default;
  explicit miscounted(std::size_t n) : v_(n + 1) {}
  std::span<double> values() { return v_; }
  std::span<const double> values() const { return v_; }
  std::size_t layout() const { return v_.size(); }

 private:
  std::vector<double> v_;
};
}  // namespace

TEST_CASE("a type whose layout is its count gets a codec that bounds the count before constructing") {
  counted p(5);
  for (std::size_t i = 0; i < 5; ++i) p.values()[i] = 0.5 * double(i);
  const auto bytes = flotilla::encode(p);
  CHECK(bytes.size() == 1 + 4 + 2 + 1 + 1 + 8 + 5 * sizeof(double));  // endianness, envelope, width, count, scalars
  const auto back = flotilla::decode<counted>(bytes);
  CHECK(std::ranges::equal(back.values(), p.values()));
  // The reader's limit (the model in play) and the bytes left bound the count, before any allocation.
  CHECK_THROWS_WITH_AS((void)flotilla::decode<counted>(bytes, {.max_scalars = 4}),
                       doctest::Contains("scalar count is 5; the limit is 4"), decode_error);
  auto huge = bytes;
  const std::uint64_t claimed = std::uint64_t{1} << 40;
  std::memcpy(huge.data() + 9, &claimed, sizeof claimed);  // the count, after endianness, envelope and width
  CHECK_THROWS_WITH_AS((void)flotilla::decode<counted>(huge, {.max_scalars = std::uint64_t{1} << 41}),
                       doctest::Contains("bytes remain (truncated or corrupt input)"), decode_error);
  // A type that breaks the contract is refused, not trusted.
  miscounted m(5);
  CHECK_THROWS_WITH_AS((void)flotilla::decode<miscounted>(flotilla::encode(m)),
                       doctest::Contains("a parameter set made for 6 scalars holds 7"), decode_error);
}

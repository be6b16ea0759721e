#include <flotilla/transport/asio/frame.hpp>

#include <flotilla/transport/asio/protocol.hpp>

#include <doctest/doctest.h>

#include <array>
#include <numeric>
#include <vector>

using flotilla::tcp::frame_type;
using flotilla::tcp::protocol_error;

namespace {
std::span<const std::byte> bytes_of(const std::vector<unsigned char>& data) { return std::as_bytes(std::span(data)); }
}  // namespace

TEST_CASE("CRC32C matches the published check values") {
  const std::vector<unsigned char> check{'1', '2', '3', '4', '5', '6', '7', '8', '9'};
  CHECK(flotilla::tcp::crc32c(bytes_of(check)) == 0xE3069283u);
  // RFC 3720 (iSCSI) appendix B.4 test vectors.
  CHECK(flotilla::tcp::crc32c(bytes_of(std::vector<unsigned char>(32, 0x00))) == 0x8A9136AAu);
  CHECK(flotilla::tcp::crc32c(bytes_of(std::vector<unsigned char>(32, 0xFF))) == 0x62A8AB43u);
  std::vector<unsigned char> ascending(32);
  std::iota(ascending.begin(), ascending.end(), 0);
  CHECK(flotilla::tcp::crc32c(bytes_of(ascending)) == 0x46DD794Eu);
}

TEST_CASE("CRC32C continues across chunks, and the portable and hardware paths agree") {
  // 100,003 bytes: several triple stripes of the interleaved path, then a ragged tail.
  std::vector<unsigned char> data(100003);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<unsigned char>(i * 31 + 7);
  const auto whole = flotilla::tcp::crc32c(bytes_of(data));
  for (std::size_t split : {std::size_t{333}, std::size_t{24576}, std::size_t{50001}}) {
    const auto first = flotilla::tcp::crc32c(bytes_of(data).first(split));
    CHECK(flotilla::tcp::crc32c(bytes_of(data).subspan(split), first) == whole);
  }
  CHECK(~flotilla::tcp::detail::crc32c_portable(~0u, data.data(), data.size()) == whole);
}

TEST_CASE("every CRC32C path agrees with the table at every size, offset and starting state") {
  std::vector<unsigned char> data(100'003 + 3);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<unsigned char>((i * 2654435761u) >> 13);
#ifdef FLOTILLA_HAVE_X86_CRC32C
  const bool sse42 = __builtin_cpu_supports("sse4.2");
  const bool folding = sse42 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("vpclmulqdq") &&
                       __builtin_cpu_supports("pclmul");
  if (!sse42 || !folding) MESSAGE("this CPU lacks a hardware CRC32C path; only the dispatcher is compared");
#endif
  // Sizes around the folding path's 256-byte steps, 64- and 16-byte tails and 8-byte words.
  for (const std::size_t size : {0, 1, 7, 8, 15, 16, 63, 64, 255, 256, 257, 271, 319, 320, 511, 512, 1000, 24'577,
                                 100'003}) {
    for (const std::size_t offset : {0, 1, 3}) {
      for (const std::uint32_t state : {0xFFFFFFFFu, 0x12345678u}) {
        CAPTURE(size);
        CAPTURE(offset);
        const auto* at = data.data() + offset;
        const auto expected = flotilla::tcp::detail::crc32c_portable(state, at, size);
        CHECK(~flotilla::tcp::crc32c(std::as_bytes(std::span(at, size)), ~state) == expected);
#ifdef FLOTILLA_HAVE_X86_CRC32C
        if (sse42) CHECK(flotilla::tcp::detail::crc32c_sse42(state, at, size) == expected);
        if (folding && size >= 256) CHECK(flotilla::tcp::detail::crc32c_folding(state, at, size) == expected);
#endif
      }
    }
  }
}

TEST_CASE("a header round-trips and is checked field by field") {
  const flotilla::tcp::frame_header sent{frame_type::reply, 42, 1000, 0xABCDEF01u};
  auto bytes = flotilla::tcp::encode_header(sent);
  const auto got = flotilla::tcp::decode_header(bytes, 1000);
  CHECK(got.type == frame_type::reply);
  CHECK(got.round == 42);
  CHECK(got.payload_size == 1000);
  CHECK(got.payload_checksum == 0xABCDEF01u);

  SUBCASE("wrong magic") {
    bytes[0] = std::byte{'X'};
    CHECK_THROWS_WITH_AS((void)flotilla::tcp::decode_header(bytes, 1000), "wrong magic number: not a Flotilla frame",
                         protocol_error);
  }
  SUBCASE("another protocol version, named with ours") {
    bytes[4] = std::byte{9};
    CHECK_THROWS_WITH_AS((void)flotilla::tcp::decode_header(bytes, 1000),
                         "peer speaks protocol version 9; this build speaks version 1", protocol_error);
  }
  SUBCASE("a corrupted length is caught by the header checksum") {
    bytes[20] = std::byte{0x7F};
    CHECK_THROWS_WITH_AS((void)flotilla::tcp::decode_header(bytes, 1000), "frame header checksum mismatch",
                         protocol_error);
  }
  SUBCASE("a length over the limit is refused before any allocation") {
    CHECK_THROWS_WITH_AS((void)flotilla::tcp::decode_header(bytes, 999),
                         "reply frame announces 1,000 payload bytes; the limit is 999", protocol_error);
  }
  SUBCASE("a short header") {
    CHECK_THROWS_WITH_AS((void)flotilla::tcp::decode_header(std::span(bytes).first(31), 1000),
                         "frame header is 31 bytes; expected 32", protocol_error);
  }
}

TEST_CASE("unknown frame types and a non-zero reserved byte are refused") {
  // Re-seal the header checksum after the change, so only the field under test is wrong.
  const auto resealed = [](std::array<std::byte, 32> bytes) {
    const auto crc = flotilla::tcp::crc32c(std::span(bytes).first(28));
    for (int i = 0; i < 4; ++i) bytes[28 + i] = std::byte(crc >> (8 * i));
    return bytes;
  };
  auto bytes = flotilla::tcp::encode_header({frame_type::task, 1, 0, 0});
  bytes[6] = std::byte{99};
  CHECK_THROWS_WITH_AS((void)flotilla::tcp::decode_header(resealed(bytes), 10), "unknown frame type 99", protocol_error);
  bytes = flotilla::tcp::encode_header({frame_type::task, 1, 0, 0});
  bytes[7] = std::byte{1};
  CHECK_THROWS_WITH_AS((void)flotilla::tcp::decode_header(resealed(bytes), 10), "reserved header byte is not zero",
                       protocol_error);
}

TEST_CASE("a payload must match its checksum") {
  const auto frame = flotilla::tcp::make_frame(frame_type::hello, 0, flotilla::tcp::encode_hello({7, "secret"}));
  const auto header = flotilla::tcp::decode_header(frame.header, 100);
  REQUIRE(frame.payload.size() == 1);
  std::vector<std::byte> payload(frame.payload[0].begin(), frame.payload[0].end());
  flotilla::tcp::verify_payload(header, payload);
  payload[3] ^= std::byte{1};
  CHECK_THROWS_WITH_AS(flotilla::tcp::verify_payload(header, payload), "hello frame payload checksum mismatch",
                       protocol_error);
}

TEST_CASE("hello and reason payloads round-trip; malformed ones are protocol errors") {
  const auto greeting = flotilla::tcp::decode_hello(*flotilla::tcp::encode_hello({7, "secret"}));
  CHECK(greeting.learner == 7);
  CHECK(greeting.token == "secret");
  const auto [kind, reason] =
      flotilla::tcp::decode_reason(*flotilla::tcp::encode_reason(flotilla::task_kind::evaluate, "disk full"));
  CHECK(kind == flotilla::task_kind::evaluate);
  CHECK(reason == "disk full");
  auto truncated = *flotilla::tcp::encode_hello({7, "secret"});
  truncated.pop_back();
  CHECK_THROWS_WITH_AS((void)flotilla::tcp::decode_hello(truncated),
                       doctest::Contains("hello payload does not decode: truncated input"), protocol_error);
  const auto long_token = flotilla::tcp::encode_hello({7, std::string(5000, 'x')});
  CHECK_THROWS_WITH_AS((void)flotilla::tcp::decode_hello(*long_token),
                       "hello payload does not decode: token is 5,000 bytes long; the limit is 4,096", protocol_error);
}

#include <flotilla/transport/tcp/frame.hpp>

#include <flotilla/transport/tcp/protocol.hpp>

#include <doctest/doctest.h>

#include <array>
#include <numeric>
#include <string>
#include <vector>

using flotilla::tcp::frame_type;
using flotilla::protocol_error;

namespace {
std::span<const std::byte> bytes_of(const std::vector<unsigned char>& data) { return std::as_bytes(std::span(data)); }
}  // namespace

TEST_CASE("CRC32C matches the published check values") {
  const std::vector<unsigned char> check{'1', '2', '3', '4', '5', '6', '7', '8', '9'};
  CHECK(flotilla::detail::crc32c(bytes_of(check)) == 0xE3069283u);
  // RFC 3720 (iSCSI) appendix B.4 test vectors.
  CHECK(flotilla::detail::crc32c(bytes_of(std::vector<unsigned char>(32, 0x00))) == 0x8A9136AAu);
  CHECK(flotilla::detail::crc32c(bytes_of(std::vector<unsigned char>(32, 0xFF))) == 0x62A8AB43u);
  std::vector<unsigned char> ascending(32);
  std::iota(ascending.begin(), ascending.end(), 0);
  CHECK(flotilla::detail::crc32c(bytes_of(ascending)) == 0x46DD794Eu);
}

TEST_CASE("CRC32C continues across chunks, and the portable and hardware paths agree") {
  // 100,003 bytes: several triple stripes of the interleaved path, then a ragged tail.
  std::vector<unsigned char> data(100003);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<unsigned char>(i * 31 + 7);
  const auto whole = flotilla::detail::crc32c(bytes_of(data));
  for (std::size_t split : {std::size_t{333}, std::size_t{24576}, std::size_t{50001}}) {
    const auto first = flotilla::detail::crc32c(bytes_of(data).first(split));
    CHECK(flotilla::detail::crc32c(bytes_of(data).subspan(split), first) == whole);
  }
  CHECK(~flotilla::detail::crc32c_portable(~0u, data.data(), data.size()) == whole);
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
        const auto expected = flotilla::detail::crc32c_portable(state, at, size);
        CHECK(~flotilla::detail::crc32c(std::as_bytes(std::span(at, size)), ~state) == expected);
#ifdef FLOTILLA_HAVE_X86_CRC32C
        if (sse42) CHECK(flotilla::detail::crc32c_sse42(state, at, size) == expected);
        if (folding && size >= 256) CHECK(flotilla::detail::crc32c_folding(state, at, size) == expected);
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
                         ("peer speaks protocol version 9; this build speaks version " +
                          std::to_string(flotilla::tcp::protocol_version)).c_str(),
                         protocol_error);
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
    const auto crc = flotilla::detail::crc32c(std::span(bytes).first(28));
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
  const auto frame = flotilla::tcp::make_frame(frame_type::hello, 0, flotilla::tcp::encode_hello({7, {}}));
  const auto header = flotilla::tcp::decode_header(frame.header, 100);
  REQUIRE(frame.payload.size() == 1);
  std::vector<std::byte> payload(frame.payload[0].begin(), frame.payload[0].end());
  flotilla::tcp::verify_payload(header, payload);
  payload[3] ^= std::byte{1};
  CHECK_THROWS_WITH_AS(flotilla::tcp::verify_payload(header, payload), "hello frame payload checksum mismatch",
                       protocol_error);
}

TEST_CASE("challenge, hello, refusal and reason payloads round-trip; malformed ones are protocol errors") {
  flotilla::tcp::challenge_nonce nonce{};
  for (std::size_t i = 0; i < nonce.size(); ++i) nonce[i] = std::byte(i);
  CHECK(flotilla::tcp::decode_challenge(*flotilla::tcp::encode_challenge(nonce)) == nonce);
  CHECK_THROWS_WITH_AS((void)flotilla::tcp::decode_challenge(std::vector<std::byte>(31)),
                       "challenge holds 31 bytes; expected 32", protocol_error);
  const auto proof = flotilla::tcp::prove("secret", nonce, 7);
  const auto greeting = flotilla::tcp::decode_hello(*flotilla::tcp::encode_hello({7, proof}));
  CHECK(greeting.learner == 7);
  CHECK(greeting.proof == proof);
  CHECK(flotilla::tcp::decode_refusal(*flotilla::tcp::encode_refusal(flotilla::tcp::refusal_code::busy)) ==
        flotilla::tcp::refusal_code::busy);
  CHECK_THROWS_WITH_AS((void)flotilla::tcp::decode_refusal(std::vector<std::byte>{std::byte{1}, std::byte{9}}),
                       doctest::Contains("refusal payload does not decode: unknown refusal code 9"), protocol_error);
  const auto [kind, reason] =
      flotilla::tcp::decode_reason(*flotilla::tcp::encode_reason(flotilla::task_kind::evaluate, "disk full"));
  CHECK(kind == flotilla::task_kind::evaluate);
  CHECK(reason == "disk full");
  auto truncated = *flotilla::tcp::encode_hello({7, proof});
  truncated.pop_back();
  CHECK_THROWS_WITH_AS((void)flotilla::tcp::decode_hello(truncated),
                       doctest::Contains("hello payload does not decode: truncated input"), protocol_error);
  // Every control payload fits its frame type's limit; frames that carry nothing carry nothing.
  CHECK(flotilla::tcp::encode_hello({~0ull, proof})->size() <= flotilla::tcp::payload_limit(frame_type::hello, 0));
  CHECK(flotilla::tcp::encode_reason(flotilla::task_kind::fit, std::string(5000, 'x'))->size() <=
        flotilla::tcp::payload_limit(frame_type::failure, 0));
  CHECK(flotilla::tcp::payload_limit(frame_type::heartbeat, 1 << 20) == 0);
  CHECK(flotilla::tcp::payload_limit(frame_type::opening, 1 << 20) == 0);
  CHECK(flotilla::tcp::payload_limit(frame_type::reply, 1 << 20) == 1 << 20);
}

TEST_CASE("a hello carries the learner's properties, bounded in number and length") {
  const flotilla::tcp::hello_proof proof{};
  const flotilla::settings properties{{"device", "gpu"}, {"examples", std::int64_t{600}}, {"memory_gib", 7.5}};
  const auto greeting = flotilla::tcp::decode_hello(*flotilla::tcp::encode_hello({3, proof, properties}));
  CHECK(greeting.learner == 3);
  CHECK(greeting.properties == properties);
  // 32 numbers under 100-byte names fit the hello frame's limit (a learner checks its own hello).
  flotilla::settings numbers;
  for (int i = 0; i < 32; ++i) numbers[std::string(100, char('a' + i % 26)) + std::to_string(i)] = double(i);
  CHECK(flotilla::tcp::encode_hello({~0ull, proof, numbers})->size() <= flotilla::tcp::payload_limit(frame_type::hello, 0));
  // Beyond the bounds: refused when decoded.
  auto many = numbers;
  many["one too many"] = 1.0;
  CHECK_THROWS_WITH_AS((void)flotilla::tcp::decode_hello(*flotilla::tcp::encode_hello({3, proof, many})),
                       doctest::Contains("property count is 33; the limit is 32"), protocol_error);
  CHECK_THROWS_WITH_AS(
      (void)flotilla::tcp::decode_hello(*flotilla::tcp::encode_hello({3, proof, {{"device", std::string(300, 'x')}}})),
      doctest::Contains("setting text is 300 bytes long; the limit is 256"), protocol_error);
  auto bad_type = *flotilla::tcp::encode_hello({3, proof, {{"k", 1.0}}});
  bad_type[1 + 8 + 32 + 8 + 4 + 1] = std::byte{7};  // endianness, id, proof, count, key length, key: the tag
  CHECK_THROWS_WITH_AS((void)flotilla::tcp::decode_hello(bad_type), doctest::Contains("setting 'k' has an unknown type"),
                       protocol_error);
}

TEST_CASE("a hello's proof is HMAC-SHA256 of the context, nonce and id, keyed by the token") {
  // Reference computed outside Flotilla: `openssl dgst -sha256 -hmac secret` over the bytes
  // "flotilla tcp hello v2", 00 01 .. 1f, 07 00 00 00 00 00 00 00.
  flotilla::tcp::challenge_nonce nonce{};
  for (std::size_t i = 0; i < nonce.size(); ++i) nonce[i] = std::byte(i);
  const auto proof = flotilla::tcp::prove("secret", nonce, 7);
  std::string hex;
  for (const auto b : proof) {
    constexpr char digits[] = "0123456789abcdef";
    hex += digits[std::to_integer<int>(b) >> 4];
    hex += digits[std::to_integer<int>(b) & 15];
  }
  CHECK(hex == "4ca31f6d76d94b9e702692d36900c5c582d776433d1e24121468a4e2fd85724d");
  CHECK(flotilla::tcp::proof_matches(proof, "secret", nonce, 7));
  CHECK_FALSE(flotilla::tcp::proof_matches(proof, "secret", nonce, 8));   // bound to the id
  CHECK_FALSE(flotilla::tcp::proof_matches(proof, "Secret", nonce, 7));   // and to the token
  auto other = nonce;
  other[0] = std::byte{0xff};
  CHECK_FALSE(flotilla::tcp::proof_matches(proof, "secret", other, 7));  // and to the connection's nonce
  CHECK(flotilla::tcp::make_challenge() != flotilla::tcp::make_challenge());
}

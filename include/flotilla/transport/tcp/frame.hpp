#pragma once
// The TCP wire protocol's framing, with no Asio in it: a fixed 32-byte header, then the payload.
//
//   offset  size  field
//        0     4  magic "FLTF"
//        4     2  protocol version
//        6     1  frame type
//        7     1  reserved, zero
//        8     8  round id
//       16     8  payload length in bytes
//       24     4  CRC32C of the payload
//       28     4  CRC32C of bytes 0..27 (so a corrupted length is caught before it is trusted)
//
// All integers little-endian. The header is checked completely (magic, version, type, reserved
// byte, header checksum, length against the configured maximum) before any payload memory is
// allocated. Byte-level work is non-template inline code over spans.

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>

#include "flotilla/detail/config.hpp"
#include "flotilla/detail/crc32c.hpp"
#include "flotilla/detail/text.hpp"
#include "flotilla/errors.hpp"


namespace flotilla::tcp {

/// The version of the TCP protocol this build speaks.
/// Version 2 (Flotilla 0.2) added the challenge frame, the hello's proof and refusal codes.
/// Version 3 (Flotilla 0.3) carries payloads in wire format 2 (open task kinds).
/// Version 4 (Flotilla 0.4): the learner speaks first (an opening frame, so a TLS aggregator
/// recognises a plain learner), hellos carry the learner's properties, and payloads use wire
/// format 3 (settings as numbers, integers or text).
/// Version 5 (Flotilla 0.6): tasks and replies in wire format 4 (stage payloads).
/// Version 6 (Flotilla 0.8): tasks and replies in wire format 5 (the codec a reply should use,
/// named in every task; coded parameters and updates).
inline constexpr std::uint16_t protocol_version = 6;
/// "FLTF" as a little-endian 32-bit number.
inline constexpr std::uint32_t frame_magic = 0x46544C46;
inline constexpr std::size_t header_size = 32;

enum class frame_type : std::uint8_t {
  hello = 1,      ///< learner -> aggregator: id and proof of its token, answering the challenge
  welcome = 2,    ///< aggregator -> learner: registration accepted
  refusal = 3,    ///< aggregator -> learner: registration refused, with the reason
  task = 4,       ///< aggregator -> learner: encoded flotilla::task
  reply = 5,      ///< learner -> aggregator: encoded flotilla::reply
  failure = 6,    ///< learner -> aggregator: the task failed, with the reason
  heartbeat = 7,  ///< either way: still alive
  goodbye = 8,    ///< aggregator -> learner: the run is over, do not reconnect
  challenge = 9,  ///< aggregator -> learner: a fresh nonce, first frame on a connection
  opening = 10,   ///< learner -> aggregator: empty, the learner's first frame on a connection
};

[[nodiscard]] inline const char* to_string(frame_type type) {
  switch (type) {
    case frame_type::hello: return "hello";
    case frame_type::welcome: return "welcome";
    case frame_type::refusal: return "refusal";
    case frame_type::task: return "task";
    case frame_type::reply: return "reply";
    case frame_type::failure: return "failure";
    case frame_type::heartbeat: return "heartbeat";
    case frame_type::goodbye: return "goodbye";
    case frame_type::challenge: return "challenge";
    case frame_type::opening: return "opening";
  }
  return "unknown";
}

/// A peer that speaks another version of the protocol: retrying cannot help until one side is
/// upgraded, so a learner gives up on it (client_exit::version_mismatch).
class protocol_version_error : public protocol_error {
 public:
  protocol_version_error(std::uint16_t peer_version, const std::string& what)
      : protocol_error(what), peer_version_(peer_version) {}
  [[nodiscard]] std::uint16_t peer_version() const { return peer_version_; }

 private:
  std::uint16_t peer_version_;
};

struct frame_header {
  frame_type type = frame_type::heartbeat;
  std::uint64_t round = 0;
  std::uint64_t payload_size = 0;
  std::uint32_t payload_checksum = 0;
};

namespace detail {

inline void store_u16(std::byte* at, std::uint16_t v) {
  for (int i = 0; i < 2; ++i) at[i] = std::byte(v >> (8 * i));
}
inline void store_u32(std::byte* at, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) at[i] = std::byte(v >> (8 * i));
}
inline void store_u64(std::byte* at, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) at[i] = std::byte(v >> (8 * i));
}
template <class T>
T load(const std::byte* at) {
  T v = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i) v |= static_cast<T>(static_cast<T>(at[i]) << (8 * i));
  return v;
}

}  // namespace detail


/// The 32 header bytes for a frame whose payload has the given size and checksum.
[[nodiscard]] FLOTILLA_DECL std::array<std::byte, header_size> encode_header(const frame_header& header);

/// Checks and decodes the 32 header bytes. @throws protocol_error naming what is wrong: magic,
/// version (both versions named; protocol_version_error), type, reserved byte, header checksum, or a payload length over
/// `max_payload` (before anything is allocated for it).
[[nodiscard]] FLOTILLA_DECL frame_header decode_header(std::span<const std::byte> bytes, std::uint64_t max_payload);

/// @throws protocol_error if a payload's `checksum` (computed as it arrived) is not the header's.
FLOTILLA_DECL void verify_checksum(const frame_header& header, std::uint32_t checksum);

/// @throws protocol_error if `payload` does not match the header's checksum.
FLOTILLA_DECL void verify_payload(const frame_header& header, std::span<const std::byte> payload);

#if FLOTILLA_HEADER_DEFINITIONS
FLOTILLA_DECL std::array<std::byte, header_size> encode_header(const frame_header& header) {
  std::array<std::byte, header_size> out{};
  detail::store_u32(out.data(), frame_magic);
  detail::store_u16(out.data() + 4, protocol_version);
  out[6] = static_cast<std::byte>(header.type);
  out[7] = std::byte{0};
  detail::store_u64(out.data() + 8, header.round);
  detail::store_u64(out.data() + 16, header.payload_size);
  detail::store_u32(out.data() + 24, header.payload_checksum);
  detail::store_u32(out.data() + 28, flotilla::detail::crc32c(std::span(out).first(28)));
  return out;
}

FLOTILLA_DECL frame_header decode_header(std::span<const std::byte> bytes, std::uint64_t max_payload) {
  if (bytes.size() != header_size)
    throw protocol_error("frame header is " + std::to_string(bytes.size()) + " bytes; expected " +
                         std::to_string(header_size));
  if (detail::load<std::uint32_t>(bytes.data()) != frame_magic)
    throw protocol_error("wrong magic number: not a Flotilla frame");
  const auto version = detail::load<std::uint16_t>(bytes.data() + 4);
  if (version != protocol_version)
    throw protocol_version_error(version, "peer speaks protocol version " + std::to_string(version) + "; this build speaks version " +
                         std::to_string(protocol_version));
  if (detail::load<std::uint32_t>(bytes.data() + 28) != flotilla::detail::crc32c(bytes.first(28)))
    throw protocol_error("frame header checksum mismatch");
  const auto type = static_cast<std::uint8_t>(bytes[6]);
  if (type < static_cast<std::uint8_t>(frame_type::hello) || type > static_cast<std::uint8_t>(frame_type::opening))
    throw protocol_error("unknown frame type " + std::to_string(type));
  if (bytes[7] != std::byte{0}) throw protocol_error("reserved header byte is not zero");
  frame_header header{static_cast<frame_type>(type), detail::load<std::uint64_t>(bytes.data() + 8),
                      detail::load<std::uint64_t>(bytes.data() + 16), detail::load<std::uint32_t>(bytes.data() + 24)};
  if (header.payload_size > max_payload)
    throw protocol_error(std::string(to_string(header.type)) + " frame announces " +
                         flotilla::detail::grouped(header.payload_size) + " payload bytes; the limit is " +
                         flotilla::detail::grouped(max_payload));
  return header;
}

FLOTILLA_DECL void verify_checksum(const frame_header& header, std::uint32_t checksum) {
  if (checksum != header.payload_checksum)
    throw protocol_error(std::string(to_string(header.type)) + " frame payload checksum mismatch");
}

FLOTILLA_DECL void verify_payload(const frame_header& header, std::span<const std::byte> payload) {
  verify_checksum(header, flotilla::detail::crc32c(payload));
}
#endif  // FLOTILLA_HEADER_DEFINITIONS

}  // namespace flotilla::tcp

#pragma once
// The TCP protocol's small messages (challenge, hello, refusal, failure), the payload limit of
// every frame type, and outgoing frames, with no Asio. Tasks and replies use
// flotilla/wire/messages.hpp; every payload but the challenge's raw nonce is cereal portable binary.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "flotilla/detail/config.hpp"
#include "flotilla/messages.hpp"
#include "flotilla/wire/messages.hpp"
#include "flotilla/transport/tcp/authentication.hpp"
#include "flotilla/transport/tcp/frame.hpp"

namespace flotilla::tcp {

/// A frame ready to write: its header, then its payload as pieces written in order with one
/// gathered write. `owner` keeps the pieces' memory alive, so one payload (a task's encoding and
/// the global parameters it points into) goes to every selected learner without a copy.
struct outgoing_frame {
  std::array<std::byte, header_size> header{};
  std::vector<std::span<const std::byte>> payload;
  std::shared_ptr<const void> owner;
};

namespace detail {
FLOTILLA_DECL outgoing_frame framed(frame_type type, std::uint64_t round,
                                    std::vector<std::span<const std::byte>> pieces,
                                    std::shared_ptr<const void> owner);
}  // namespace detail

/// A frame whose payload is `payload`'s bytes (none when null).
[[nodiscard]] FLOTILLA_DECL outgoing_frame make_frame(frame_type type, std::uint64_t round,
                                                      std::shared_ptr<const byte_buffer> payload = nullptr);

/// A frame carrying a task or reply, encoded with encode_gathered: its parameters' scalars are
/// written straight from `message`, which the frame keeps alive.
template <class Message>
[[nodiscard]] outgoing_frame make_message_frame(frame_type type, std::uint64_t round,
                                                std::shared_ptr<const Message> message) {
  struct encoded_message {
    std::shared_ptr<const Message> message;
    gathered_encoding encoding;
  };
  auto held = std::make_shared<const encoded_message>(encoded_message{message, encode_gathered(*message)});
  std::vector<std::span<const std::byte>> pieces;
  held->encoding.for_each_piece([&](std::span<const std::byte> piece) { pieces.push_back(piece); });
  return detail::framed(type, round, std::move(pieces), std::move(held));
}

/// A learner's answer to the challenge: who it is, and the proof that it holds that identity's
/// token (see authentication.hpp; an aggregator without tokens ignores the proof).
struct hello {
  learner_id learner = 0;
  hello_proof proof{};
  settings properties{};  ///< what the learner reports about itself (at most hello_property_limits)
};

/// Bounds on a hello's properties: the aggregator keeps them for as long as the learner stays.
inline constexpr decode_limits hello_property_limits{.max_scalars = 0, .max_tensors = 0, .max_rank = 0,
                                                     .max_string = 256, .max_entries = 32};

/// Why the aggregator refused a learner. Only the first ends the learner's run: the others are
/// temporary, and the learner tries again after its backoff.
enum class refusal_code : std::uint8_t {
  authentication_failed = 1,  ///< unknown id, wrong proof or certificate: the same answer for all
  already_connected = 2,      ///< this identity has a live connection; a takeover needs it to go silent
  busy = 3,                   ///< too many connections, or too many failures from this address
  tls_required = 4,           ///< a plain-TCP learner reached an aggregator that speaks only TLS
  tls_unsupported = 5,        ///< a TLS learner reached a plain-TCP aggregator (its handshake fails on it)
};

[[nodiscard]] inline const char* to_string(refusal_code code) {
  switch (code) {
    case refusal_code::authentication_failed: return "authentication failed";
    case refusal_code::already_connected: return "this learner is already connected";
    case refusal_code::busy: return "the aggregator is busy; try again later";
    case refusal_code::tls_required:
      return "the aggregator requires TLS and this learner speaks plain TCP (set client_options::tls)";
    case refusal_code::tls_unsupported: return "the aggregator speaks plain TCP, not TLS";
  }
  return "unknown refusal";
}

/// The payload every frame type may carry, at most, before anything is read of it; tasks and
/// replies are bounded by the model in play instead (this is only their ceiling).
[[nodiscard]] FLOTILLA_DECL std::uint64_t payload_limit(frame_type type, std::uint64_t model_message_limit);

namespace detail {
// Small control payloads: strings are bounded well below the frame limit.
inline constexpr decode_limits control_limits{.max_scalars = 0, .max_tensors = 0, .max_rank = 0,
                                              .max_string = 1000, .max_entries = 0};

template <class Body>
std::shared_ptr<const byte_buffer> encode_control(Body body) {
  auto bytes = std::make_shared<byte_buffer>();
  wire_writer out(*bytes);
  body(out);
  return bytes;
}

template <class Body>
auto decode_control(std::span<const std::byte> bytes, const char* what, Body body,
                    const decode_limits& limits = control_limits) {
  try {
    return flotilla::detail::translating_cereal_errors([&] {
      wire_reader in(bytes, limits);
      auto decoded = body(in);
      in.expect_end();
      return decoded;
    });
  } catch (const decode_error& error) {
    throw protocol_error(std::string(what) + " payload does not decode: " + error.what());
  }
}
}  // namespace detail

/// The challenge's payload is the nonce itself.
[[nodiscard]] FLOTILLA_DECL std::shared_ptr<const byte_buffer> encode_challenge(const challenge_nonce& nonce);

[[nodiscard]] FLOTILLA_DECL challenge_nonce decode_challenge(std::span<const std::byte> bytes);

[[nodiscard]] FLOTILLA_DECL std::shared_ptr<const byte_buffer> encode_hello(const hello& greeting);

[[nodiscard]] FLOTILLA_DECL hello decode_hello(std::span<const std::byte> bytes);

[[nodiscard]] FLOTILLA_DECL std::shared_ptr<const byte_buffer> encode_refusal(refusal_code code);

[[nodiscard]] FLOTILLA_DECL refusal_code decode_refusal(std::span<const std::byte> bytes);

/// A reason as the payload of a failure frame, with the task kind it concerns.
[[nodiscard]] FLOTILLA_DECL std::shared_ptr<const byte_buffer> encode_reason(task_kind kind, const std::string& reason);

[[nodiscard]] FLOTILLA_DECL std::pair<task_kind, std::string> decode_reason(std::span<const std::byte> bytes);

#if FLOTILLA_HEADER_DEFINITIONS
namespace detail {
FLOTILLA_DECL outgoing_frame framed(frame_type type, std::uint64_t round,
                                    std::vector<std::span<const std::byte>> pieces,
                                    std::shared_ptr<const void> owner) {
  std::uint64_t size = 0;
  std::uint32_t checksum = 0;
  for (const auto piece : pieces) {
    size += piece.size();
    checksum = flotilla::detail::crc32c(piece, checksum);
  }
  return {encode_header({type, round, size, checksum}), std::move(pieces), std::move(owner)};
}
}  // namespace detail
FLOTILLA_DECL outgoing_frame make_frame(frame_type type, std::uint64_t round,
                                        std::shared_ptr<const byte_buffer> payload) {
  std::vector<std::span<const std::byte>> pieces;
  if (payload && !payload->empty()) pieces.emplace_back(*payload);
  return detail::framed(type, round, std::move(pieces), std::move(payload));
}

FLOTILLA_DECL std::uint64_t payload_limit(frame_type type, std::uint64_t model_message_limit) {
  switch (type) {
    case frame_type::heartbeat:
    case frame_type::welcome:
    case frame_type::goodbye:
    case frame_type::opening: return 0;
    case frame_type::challenge: return challenge_size;
    case frame_type::hello: return 4096;     // an id, a 32-byte proof and bounded properties
    case frame_type::refusal: return 16;     // a code
    case frame_type::failure: return 1024;   // a kind and a reason cut to 1,000 bytes
    case frame_type::task:
    case frame_type::reply: return model_message_limit;
  }
  return 0;
}

FLOTILLA_DECL std::shared_ptr<const byte_buffer> encode_challenge(const challenge_nonce& nonce) {
  return std::make_shared<const byte_buffer>(nonce.begin(), nonce.end());
}

FLOTILLA_DECL challenge_nonce decode_challenge(std::span<const std::byte> bytes) {
  if (bytes.size() != challenge_size)
    throw protocol_error("challenge holds " + std::to_string(bytes.size()) + " bytes; expected " +
                         std::to_string(challenge_size));
  challenge_nonce nonce{};
  std::ranges::copy(bytes, nonce.begin());
  return nonce;
}

FLOTILLA_DECL std::shared_ptr<const byte_buffer> encode_hello(const hello& greeting) {
  return detail::encode_control([&](wire_writer& out) {
    out.write(greeting.learner);
    for (const auto b : greeting.proof) out.write(static_cast<std::uint8_t>(b));
    flotilla::detail::write_settings(out, greeting.properties);
  });
}

FLOTILLA_DECL hello decode_hello(std::span<const std::byte> bytes) {
  return detail::decode_control(bytes, "hello", [](wire_reader& in) {
    hello greeting;
    greeting.learner = in.read<learner_id>("learner id");
    for (auto& b : greeting.proof) b = static_cast<std::byte>(in.read<std::uint8_t>("proof"));
    greeting.properties = flotilla::detail::read_settings(in, "property count");
    return greeting;
  }, hello_property_limits);
}

FLOTILLA_DECL std::shared_ptr<const byte_buffer> encode_refusal(refusal_code code) {
  return detail::encode_control([&](wire_writer& out) { out.write(static_cast<std::uint8_t>(code)); });
}

FLOTILLA_DECL refusal_code decode_refusal(std::span<const std::byte> bytes) {
  return detail::decode_control(bytes, "refusal", [](wire_reader& in) {
    const auto code = in.read<std::uint8_t>("refusal code");
    if (code < 1 || code > 5) throw decode_error("unknown refusal code " + std::to_string(code));
    return static_cast<refusal_code>(code);
  });
}

FLOTILLA_DECL std::shared_ptr<const byte_buffer> encode_reason(task_kind kind, const std::string& reason) {
  return detail::encode_control([&](wire_writer& out) {
    out.write(static_cast<std::uint8_t>(kind));
    out.write_string(reason.size() > 1000 ? reason.substr(0, 1000) : reason);
  });
}

FLOTILLA_DECL std::pair<task_kind, std::string> decode_reason(std::span<const std::byte> bytes) {
  return detail::decode_control(bytes, "reason", [](wire_reader& in) {
    const auto kind = flotilla::detail::read_kind(in);
    return std::pair{kind, in.read_string("reason")};
  });
}
#endif  // FLOTILLA_HEADER_DEFINITIONS

}  // namespace flotilla::tcp

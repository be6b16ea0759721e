#pragma once
// The TCP protocol's small messages (hello, refusal, failure) and outgoing frames, with no Asio.
// Tasks and replies use flotilla/serialization.hpp; every payload is cereal portable binary.

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "flotilla/messages.hpp"
#include "flotilla/serialization.hpp"
#include "flotilla/transport/asio/frame.hpp"

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
inline outgoing_frame framed(frame_type type, std::uint64_t round, std::vector<std::span<const std::byte>> pieces,
                             std::shared_ptr<const void> owner) {
  std::uint64_t size = 0;
  std::uint32_t checksum = 0;
  for (const auto piece : pieces) {
    size += piece.size();
    checksum = crc32c(piece, checksum);
  }
  return {encode_header({type, round, size, checksum}), std::move(pieces), std::move(owner)};
}
}  // namespace detail

/// A frame whose payload is `payload`'s bytes (none when null).
[[nodiscard]] inline outgoing_frame make_frame(frame_type type, std::uint64_t round,
                                               std::shared_ptr<const byte_buffer> payload = nullptr) {
  std::vector<std::span<const std::byte>> pieces;
  if (payload && !payload->empty()) pieces.emplace_back(*payload);
  return detail::framed(type, round, std::move(pieces), std::move(payload));
}

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

/// First frame of a learner: who it is and its token (empty when the aggregator needs none).
struct hello {
  learner_id learner = 0;
  std::string token;
};

namespace detail {
// Small control payloads: strings are bounded well below the frame limit.
inline constexpr decode_limits control_limits{.max_scalars = 0, .max_tensors = 0, .max_rank = 0,
                                              .max_string = 4096, .max_entries = 0};

template <class Body>
std::shared_ptr<const byte_buffer> encode_control(Body body) {
  auto bytes = std::make_shared<byte_buffer>();
  wire_writer out(*bytes);
  body(out);
  return bytes;
}

template <class Body>
auto decode_control(std::span<const std::byte> bytes, const char* what, Body body) {
  try {
    return flotilla::detail::translating_cereal_errors([&] {
      wire_reader in(bytes, control_limits);
      auto decoded = body(in);
      in.expect_end();
      return decoded;
    });
  } catch (const decode_error& error) {
    throw protocol_error(std::string(what) + " payload does not decode: " + error.what());
  }
}
}  // namespace detail

[[nodiscard]] inline std::shared_ptr<const byte_buffer> encode_hello(const hello& greeting) {
  return detail::encode_control([&](wire_writer& out) {
    out.write(greeting.learner);
    out.write_string(greeting.token);
  });
}

[[nodiscard]] inline hello decode_hello(std::span<const std::byte> bytes) {
  return detail::decode_control(bytes, "hello", [](wire_reader& in) {
    hello greeting;
    greeting.learner = in.read<learner_id>("learner id");
    greeting.token = in.read_string("token");
    return greeting;
  });
}

/// A reason as the payload of a refusal or failure frame; a failure also says which task kind.
[[nodiscard]] inline std::shared_ptr<const byte_buffer> encode_reason(task_kind kind, const std::string& reason) {
  return detail::encode_control([&](wire_writer& out) {
    out.write(static_cast<std::uint8_t>(kind));
    out.write_string(reason.size() > 4000 ? reason.substr(0, 4000) : reason);
  });
}

[[nodiscard]] inline std::pair<task_kind, std::string> decode_reason(std::span<const std::byte> bytes) {
  return detail::decode_control(bytes, "reason", [](wire_reader& in) {
    const auto kind = flotilla::detail::read_kind(in);
    return std::pair{kind, in.read_string("reason")};
  });
}

}  // namespace flotilla::tcp

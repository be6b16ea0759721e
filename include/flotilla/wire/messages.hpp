#pragma once
// The wire form of a round's messages: tasks and replies, encoded whole, gathered (large scalar
// blocks written from where they live), or decoded from their first bytes while the rest
// arrives. Parameters come last, so their scalars end the message.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "flotilla/concepts/wire_codable.hpp"
#include "flotilla/messages.hpp"
#include "flotilla/wire/codec.hpp"

namespace flotilla {

namespace detail {

// A stage's payload: a byte count, bounded by decode_limits::max_payload and by what is left of
// the message before anything is allocated, then the bytes.
inline void write_payload(wire_writer& out, const std::vector<std::uint8_t>& payload) {
  out.write(static_cast<std::uint64_t>(payload.size()));
  out.write_bytes(payload.data(), payload.size());
}
inline std::vector<std::uint8_t> read_payload(wire_reader& in) {
  const auto size = in.read_count(in.limits().max_payload, 1, "payload size");
  std::vector<std::uint8_t> payload(static_cast<std::size_t>(size));
  in.read_bytes(payload.data(), payload.size(), "payload");
  return payload;
}

// The bodies of tasks and replies, shared by the contiguous and the gathered encodings and by
// the whole and the streaming decoders. Parameters come last, so their scalars end the message.

template <WireCodable P>
void write_body(wire_writer& out, const task<P>& work) {
  out.write(static_cast<std::uint8_t>(work.kind));
  out.write(work.round);
  out.write(work.config.round);
  out.write(work.config.seed);
  write_settings(out, work.config.values);
  write_payload(out, work.payload);
  out.write(static_cast<std::uint8_t>(work.parameters ? 1 : 0));
  if (work.parameters) wire_codec<P>::write(out, *work.parameters);
}

template <WireCodable P>
task<P> read_task_body(wire_reader& in) {
  task<P> work;
  work.kind = read_kind(in);
  work.round = in.read<std::uint64_t>("round");
  work.config.round = in.read<std::uint64_t>("config round");
  work.config.seed = in.read<std::uint64_t>("config seed");
  work.config.values = read_settings(in, "setting count");
  work.payload = read_payload(in);
  // Made non-const: a streaming decode fills their final values in place (started_decode).
  if (in.read<std::uint8_t>("parameters flag") != 0) work.parameters = std::make_shared<P>(wire_codec<P>::read(in));
  return work;
}

template <WireCodable P>
void write_body(wire_writer& out, const reply<P>& answer) {
  out.write(answer.learner);
  out.write(static_cast<std::uint8_t>(answer.kind));
  out.write(answer.round);
  out.write(answer.result.examples);
  write_map(out, answer.result.metrics);
  write_payload(out, answer.payload);
  out.write(static_cast<std::uint8_t>(answer.parameters ? 1 : 0));
  if (answer.parameters) wire_codec<P>::write(out, *answer.parameters);
}

template <WireCodable P>
reply<P> read_reply_body(wire_reader& in) {
  reply<P> answer;
  answer.learner = in.read<learner_id>("learner id");
  answer.kind = read_kind(in);
  answer.round = in.read<std::uint64_t>("round");
  answer.result.examples = in.read<std::int64_t>("example count");
  answer.result.metrics = read_map(in, "metric count");
  answer.payload = read_payload(in);
  if (in.read<std::uint8_t>("parameters flag") != 0) answer.parameters = wire_codec<P>::read(in);
  return answer;
}

template <WireCodable P>
constexpr wire_content content_of(const task<P>&) { return wire_content::task; }
template <WireCodable P>
constexpr wire_content content_of(const reply<P>&) { return wire_content::reply; }

template <WireCodable P>
std::size_t payload_bytes(const std::shared_ptr<const P>& params) {
  return params ? params->values().size_bytes() : 0;
}
template <WireCodable P>
std::size_t payload_bytes(const std::optional<P>& params) {
  return params ? params->values().size_bytes() : 0;
}

}  // namespace detail

/// Encodes a task once; the same bytes serve every recipient.
template <WireCodable P>
[[nodiscard]] byte_buffer encode(const task<P>& work) {
  return detail::encode_message(wire_content::task, detail::payload_bytes(work.parameters),
                                [&](wire_writer& out) { detail::write_body(out, work); });
}

template <WireCodable P>
[[nodiscard]] task<P> decode_task(std::span<const std::byte> bytes, const decode_limits& limits = {}) {
  return detail::decode_message(bytes, limits, wire_content::task,
                                [](wire_reader& in) { return detail::read_task_body<P>(in); });
}

template <WireCodable P>
[[nodiscard]] byte_buffer encode(const reply<P>& answer) {
  return detail::encode_message(wire_content::reply, detail::payload_bytes(answer.parameters),
                                [&](wire_writer& out) { detail::write_body(out, answer); });
}

template <WireCodable P>
[[nodiscard]] reply<P> decode_reply(std::span<const std::byte> bytes, const decode_limits& limits = {}) {
  return detail::decode_message(bytes, limits, wire_content::reply,
                                [](wire_reader& in) { return detail::read_reply_body<P>(in); });
}

/// Encodes a task or reply for a gathered write: the same bytes as encode(), but scalar blocks
/// of at least wire_writer::external_threshold bytes stay where they are.
template <class Message>
  requires requires(const Message& m) { detail::write_body(std::declval<wire_writer&>(), m); }
[[nodiscard]] gathered_encoding encode_gathered(const Message& message) {
  gathered_encoding encoded;
  wire_writer out(encoded.bytes, &encoded.blocks);
  detail::write_envelope(out, detail::content_of(message));
  detail::write_body(out, message);
  return encoded;
}

/// Decodes a task from its first bytes when that is possible before the rest arrives: see
/// started_decode. Returns nothing if the whole payload is needed (call decode_task then).
/// @throws decode_error on malformed input, as decode_task would.
template <WireCodable P>
[[nodiscard]] std::optional<started_decode<task<P>>> decode_task_start(std::span<const std::byte> first,
                                                                       std::uint64_t total,
                                                                       const decode_limits& limits = {}) {
  return detail::decode_message_start(first, total, limits, wire_content::task,
                                      [](wire_reader& in) { return detail::read_task_body<P>(in); });
}

/// The same for a reply.
template <WireCodable P>
[[nodiscard]] std::optional<started_decode<reply<P>>> decode_reply_start(std::span<const std::byte> first,
                                                                         std::uint64_t total,
                                                                         const decode_limits& limits = {}) {
  return detail::decode_message_start(first, total, limits, wire_content::reply,
                                      [](wire_reader& in) { return detail::read_reply_body<P>(in); });
}

}  // namespace flotilla

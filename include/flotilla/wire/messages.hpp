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
inline void write_payload(wire_writer& out, std::span<const std::uint8_t> payload) {
  out.write(static_cast<std::uint64_t>(payload.size()));
  out.write_bytes(payload.data(), payload.size());
}
inline std::vector<std::uint8_t> read_payload(wire_reader& in) {
  const auto size = in.read_count(in.limits().max_payload, 1, "payload size");
  std::vector<std::uint8_t> payload(static_cast<std::size_t>(size));
  in.read_bytes(payload.data(), payload.size(), "payload");
  return payload;
}

// Coded values: the codec's name (so a side that does not know it says which), the count of
// values, then the bytes, bounded by the codec's size for that count and by what is left.
inline void write_coded(wire_writer& out, const compression::coded_values& coded) {
  out.write_string(coded.spec.name());
  out.write(coded.count);
  write_payload(out, coded.bytes);
}
inline compression::coded_values read_coded(wire_reader& in) {
  compression::coded_values coded;
  const auto name = in.read_string("codec name");
  try {
    coded.spec = compression::parse_codec(name);
  } catch (const configuration_error& error) {
    throw decode_error(error.what());
  }
  if (coded.spec.kind == compression::codec::none) throw decode_error("coded values name the codec none");
  coded.count = in.read<std::uint64_t>("coded value count");
  if (coded.count > in.limits().max_scalars)
    throw decode_error("coded values hold " + detail::grouped(coded.count) + " values; the limit is " +
                       detail::grouped(in.limits().max_scalars));
  const auto size = in.read_count(std::min(in.limits().max_payload, coded.spec.max_bytes(coded.count)), 1, "coded byte count");
  coded.bytes.resize(static_cast<std::size_t>(size));
  in.read_bytes(coded.bytes.data(), coded.bytes.size(), "coded values");
  return coded;
}

// What follows a message's payload: nothing (0), parameters (1), or coded values (2).
enum class parameters_form : std::uint8_t { none = 0, plain = 1, coded = 2 };

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
  out.write_string(work.reply_codec.name());
  const bool coded = work.parameters && work.coded_parameters;
  out.write(static_cast<std::uint8_t>(coded ? parameters_form::coded : work.parameters ? parameters_form::plain : parameters_form::none));
  if (coded) {  // the coded values, then the parameters' codec with its block left out
    write_coded(out, *work.coded_parameters);
    out.omit_block(work.coded_parameters->count);
  }
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
  try {  // a codec this side does not know is refused by its name
    work.reply_codec = compression::parse_codec(in.read_string("reply codec"));
  } catch (const configuration_error& error) {
    throw decode_error(std::string("the task asks for replies in ") + error.what());
  }
  const auto form = in.read<std::uint8_t>("parameters form");
  if (form > std::uint8_t(parameters_form::coded)) throw decode_error("parameters form " + std::to_string(form) + " is unknown");
  if (form == std::uint8_t(parameters_form::coded)) {
    auto coded = std::make_shared<compression::coded_values>(read_coded(in));
    in.supply_block(*coded);
    work.coded_parameters = std::move(coded);
  }
  // Made non-const: a streaming decode fills their final values in place (started_decode).
  if (form != std::uint8_t(parameters_form::none)) work.parameters = std::make_shared<P>(wire_codec<P>::read(in));
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
  const auto form = answer.coded_update ? parameters_form::coded : answer.parameters ? parameters_form::plain : parameters_form::none;
  out.write(static_cast<std::uint8_t>(form));
  if (answer.coded_update) write_coded(out, *answer.coded_update);
  else if (answer.parameters) wire_codec<P>::write(out, *answer.parameters);
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
  const auto form = in.read<std::uint8_t>("parameters form");
  if (form == std::uint8_t(parameters_form::plain)) answer.parameters = wire_codec<P>::read(in);
  else if (form == std::uint8_t(parameters_form::coded)) answer.coded_update = read_coded(in);
  else if (form != std::uint8_t(parameters_form::none)) throw decode_error("parameters form " + std::to_string(form) + " is unknown");
  return answer;
}

template <WireCodable P>
constexpr wire_content content_of(const task<P>&) { return wire_content::task; }
template <WireCodable P>
constexpr wire_content content_of(const reply<P>&) { return wire_content::reply; }

template <WireCodable P>
std::size_t payload_bytes(const task<P>& work) {
  if (work.coded_parameters) return work.coded_parameters->bytes.size();
  return work.parameters ? work.parameters->values().size_bytes() : 0;
}
template <WireCodable P>
std::size_t payload_bytes(const reply<P>& answer) {
  if (answer.coded_update) return answer.coded_update->bytes.size();
  return answer.parameters ? answer.parameters->values().size_bytes() : 0;
}

}  // namespace detail

/// Encodes a task once; the same bytes serve every recipient.
template <WireCodable P>
[[nodiscard]] byte_buffer encode(const task<P>& work) {
  return detail::encode_message(wire_content::task, detail::payload_bytes(work),
                                [&](wire_writer& out) { detail::write_body(out, work); });
}

template <WireCodable P>
[[nodiscard]] task<P> decode_task(std::span<const std::byte> bytes, const decode_limits& limits = {}) {
  return detail::decode_message(bytes, limits, wire_content::task,
                                [](wire_reader& in) { return detail::read_task_body<P>(in); });
}

template <WireCodable P>
[[nodiscard]] byte_buffer encode(const reply<P>& answer) {
  return detail::encode_message(wire_content::reply, detail::payload_bytes(answer),
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

// libFuzzer target for everything the TCP transport decodes from the network. The first input
// byte picks a mode: even, the rest is a whole frame (header, checksum, then the payload decoder
// its type selects); odd, the rest goes straight to one payload decoder, so the fuzzer reaches
// the decoders without having to forge checksums. Tasks and replies are also decoded the
// streaming way (first bytes, then the rest in place) at a split the input picks, which must
// agree with the whole decoder. A task or reply of a secure-aggregation stage has its payload
// decoded as that stage's message too, and a reply's coded update is checked and, when it
// passes, decoded slice by slice as a fold would. Any exception other than the two documented ones, any
// disagreement, crash, leak or undefined behaviour is a finding.
#include <flotilla/algorithms/secure_aggregation/messages.hpp>
#include <flotilla/parameters.hpp>
#include <flotilla/wire/messages.hpp>
#include <flotilla/transport/tcp/frame.hpp>
#include <flotilla/transport/tcp/protocol.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace {

using params = flotilla::parameters<float>;
// The production limits: what a real aggregator or learner would accept before its model bounds it.
constexpr flotilla::decode_limits limits{};
constexpr std::uint64_t max_payload = std::uint64_t{1} << 32;  // server_options' and client_options' default

const params* parameters_of(const flotilla::task<params>& work) { return work.parameters.get(); }
const params* parameters_of(const flotilla::reply<params>& answer) {
  return answer.parameters ? &*answer.parameters : nullptr;
}

// A stage's payload as the learner (a task's) or the aggregator (a reply's) reads it, with the
// bounds each sets from its own configuration.
void decode_stage_payload(flotilla::task_kind kind, std::span<const std::uint8_t> bytes, bool reply) {
  namespace secagg = flotilla::secure_aggregation;
  constexpr std::size_t neighbours = 4096, values = std::size_t{1} << 20;
  if (kind == secagg::advertise_keys_kind)
    reply ? (void)secagg::decode_advertised_keys(bytes) : (void)secagg::decode_round_setup(bytes, neighbours);
  else if (kind == secagg::share_keys_kind)
    reply ? (void)secagg::decode_share_list(bytes, neighbours) : (void)secagg::decode_key_list(bytes, neighbours);
  else if (kind == secagg::masked_input_kind)
    reply ? (void)secagg::decode_masked_input(bytes, neighbours, values) : (void)secagg::decode_share_list(bytes, neighbours);
  else if (kind == secagg::unmasking_kind)
    reply ? (void)secagg::decode_unmask_response(bytes, neighbours) : (void)secagg::decode_unmask_request(bytes, neighbours);
}
void decode_stage_payload(const flotilla::task<params>& work) { decode_stage_payload(work.kind, work.payload, false); }
void decode_stage_payload(const flotilla::reply<params>& answer) {
  decode_stage_payload(answer.kind, answer.payload, true);
  if (!answer.coded_update) return;
  // As the door checks it, against the codec it names and the count it claims; then the first
  // and last slices of up to 4,096 values, as the fold decodes them (never the whole count).
  const auto& coded = *answer.coded_update;
  if (flotilla::compression::check(coded, coded.spec, coded.count)) return;
  std::vector<float> slice(std::min<std::uint64_t>(coded.count, 4096), 1.0f);
  flotilla::compression::add_decoded(coded, 0, slice, 0.5f);
  flotilla::compression::add_decoded(coded, std::size_t(coded.count - slice.size()), slice, 0.5f);
}
const flotilla::compression::coded_values* coded_of(const flotilla::task<params>& work) { return work.coded_parameters.get(); }
const flotilla::compression::coded_values* coded_of(const flotilla::reply<params>& answer) {
  return answer.coded_update ? &*answer.coded_update : nullptr;
}

// Decodes whole and streaming (the first `split` bytes, then the rest copied into place); both
// must succeed with the same parameters or both fail.
template <class Whole, class Start>
void decode_both_ways(std::span<const std::byte> payload, std::size_t split, Whole whole, Start start) {
  using message = decltype(whole(payload));
  std::optional<message> at_once, streamed;
  try {
    at_once = whole(payload);
  } catch (const flotilla::decode_error&) {
  }
  try {
    if (auto started = start(payload.first(split), payload.size())) {
      if (started->rest().size() != payload.size() - split) __builtin_trap();
      std::ranges::copy(payload.subspan(split), started->rest().begin());
      streamed = std::move(started->message);
    } else {
      streamed = whole(payload);
    }
  } catch (const flotilla::decode_error&) {
  }
  if (at_once.has_value() != streamed.has_value()) __builtin_trap();
  if (!at_once) return;
  if (at_once->payload != streamed->payload) __builtin_trap();
  const auto *x = coded_of(*at_once), *y = coded_of(*streamed);
  if ((x == nullptr) != (y == nullptr) || (x && (x->bytes != y->bytes || x->count != y->count || !(x->spec == y->spec))))
    __builtin_trap();
  decode_stage_payload(*at_once);
  const auto *a = parameters_of(*at_once), *b = parameters_of(*streamed);
  if ((a == nullptr) != (b == nullptr) || at_once->round != streamed->round) __builtin_trap();
  if (a && (!(a->layout() == b->layout()) ||  // bit for bit: the values may hold NaN
            !std::ranges::equal(std::as_bytes(a->values()), std::as_bytes(b->values()))))
    __builtin_trap();
}

void decode_payload(flotilla::tcp::frame_type type, std::span<const std::byte> payload, std::size_t split) {
  using flotilla::tcp::frame_type;
  switch (type) {
    case frame_type::hello: (void)flotilla::tcp::decode_hello(payload); break;
    case frame_type::refusal: (void)flotilla::tcp::decode_refusal(payload); break;
    case frame_type::failure: (void)flotilla::tcp::decode_reason(payload); break;
    case frame_type::challenge: (void)flotilla::tcp::decode_challenge(payload); break;
    case frame_type::task:
      decode_both_ways(
          payload, split, [](auto bytes) { return flotilla::decode_task<params>(bytes, limits); },
          [](auto first, auto total) { return flotilla::decode_task_start<params>(first, total, limits); });
      break;
    case frame_type::reply:
      decode_both_ways(
          payload, split, [](auto bytes) { return flotilla::decode_reply<params>(bytes, limits); },
          [](auto first, auto total) { return flotilla::decode_reply_start<params>(first, total, limits); });
      break;
    default: (void)flotilla::decode<params>(payload, limits); break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto input = std::as_bytes(std::span(data + 1, size - 1));
  // Where a streaming decode splits the payload: the input's last byte, as a fraction of it.
  const auto split_of = [&](std::size_t payload_size) { return payload_size * data[size - 1] / 256; };
  try {
    if (data[0] % 2 == 1) {
      decode_payload(static_cast<flotilla::tcp::frame_type>(1 + (data[0] >> 1) % 9), input, split_of(input.size()));
      return 0;
    }
    const auto header_bytes = input.first(std::min(input.size(), flotilla::tcp::header_size));
    const auto header = flotilla::tcp::decode_header(header_bytes, max_payload);
    const auto payload = input.subspan(header_bytes.size());
    if (payload.size() != header.payload_size) return 0;  // a stream would wait for the rest
    flotilla::tcp::verify_payload(header, payload);
    decode_payload(header.type, payload, split_of(payload.size()));
  } catch (const flotilla::protocol_error&) {
  } catch (const flotilla::decode_error&) {
  }
  return 0;
}

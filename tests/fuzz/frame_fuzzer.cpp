// libFuzzer target for everything the TCP transport decodes from the network. The first input
// byte picks a mode: even, the rest is a whole frame (header, checksum, then the payload decoder
// its type selects); odd, the rest goes straight to one payload decoder, so the fuzzer reaches
// the decoders without having to forge checksums. Any exception other than the two documented
// ones, any crash, leak or undefined behaviour is a finding.
#include <flotilla/parameters.hpp>
#include <flotilla/serialization.hpp>
#include <flotilla/transport/asio/frame.hpp>
#include <flotilla/transport/asio/protocol.hpp>

#include <cstddef>
#include <cstdint>
#include <span>

namespace {

using params = flotilla::parameters<float>;
constexpr flotilla::decode_limits limits{.max_scalars = 1 << 20};

void decode_payload(flotilla::tcp::frame_type type, std::span<const std::byte> payload) {
  using flotilla::tcp::frame_type;
  switch (type) {
    case frame_type::hello: (void)flotilla::tcp::decode_hello(payload); break;
    case frame_type::refusal:
    case frame_type::failure: (void)flotilla::tcp::decode_reason(payload); break;
    case frame_type::task: (void)flotilla::decode_task<params>(payload, limits); break;
    case frame_type::reply: (void)flotilla::decode_reply<params>(payload, limits); break;
    default: (void)flotilla::decode<params>(payload, limits); break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto input = std::as_bytes(std::span(data + 1, size - 1));
  try {
    if (data[0] % 2 == 1) {
      decode_payload(static_cast<flotilla::tcp::frame_type>(1 + (data[0] >> 1) % 8), input);
      return 0;
    }
    const auto header_bytes = input.first(std::min(input.size(), flotilla::tcp::header_size));
    const auto header = flotilla::tcp::decode_header(header_bytes, 1 << 20);
    const auto payload = input.subspan(header_bytes.size());
    if (payload.size() != header.payload_size) return 0;  // a stream would wait for the rest
    flotilla::tcp::verify_payload(header, payload);
    decode_payload(header.type, payload);
  } catch (const flotilla::tcp::protocol_error&) {
  } catch (const flotilla::decode_error&) {
  }
  return 0;
}

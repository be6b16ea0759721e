#pragma once
// The stage messages of a secure round as task and reply payloads (task::payload,
// reply::payload), and the task kinds that name the stages. Every payload comes off the network:
// each count is checked against what is left of it, and against a bound the reader sets from its
// own configuration, before anything is allocated; a payload with bytes left over is refused.
// Integers are little-endian.

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "flotilla/algorithms/secure_aggregation/protocol.hpp"
#include "flotilla/detail/text.hpp"
#include "flotilla/errors.hpp"
#include "flotilla/fwd.hpp"

namespace flotilla::secure_aggregation {

/// The task kinds of the four stages, in Flotilla's own range (3 to 15). The masked-input stage
/// is the one that trains: its task carries the global parameters and the fit settings.
inline constexpr task_kind advertise_keys_kind = static_cast<task_kind>(3);
inline constexpr task_kind share_keys_kind = static_cast<task_kind>(4);
inline constexpr task_kind masked_input_kind = static_cast<task_kind>(5);
inline constexpr task_kind unmasking_kind = static_cast<task_kind>(6);

/// Whether `kind` is one of the secure round's stages.
[[nodiscard]] constexpr bool is_stage(task_kind kind) {
  return kind == advertise_keys_kind || kind == share_keys_kind || kind == masked_input_kind || kind == unmasking_kind;
}

/// The bytes of one sealed share message's ciphertext: two shares (a point and five pieces,
/// 8 bytes each) and the AEAD tag.
inline constexpr std::size_t sealed_shares_bytes = 2 * 8 * (1 + pieces_per_secret) + tag_size;

namespace detail {

class payload_writer {
 public:
  void u8(std::uint8_t value) { bytes_.push_back(value); }
  void u32(std::uint32_t value) { little(value, 4); }
  void u64(std::uint64_t value) { little(value, 8); }
  void f64(double value) { u64(std::bit_cast<std::uint64_t>(value)); }
  void raw(std::span<const std::uint8_t> bytes) { bytes_.insert(bytes_.end(), bytes.begin(), bytes.end()); }
  void ids(std::span<const std::uint64_t> values) {
    u64(values.size());
    for (const auto value : values) u64(value);
  }
  std::vector<std::uint8_t> take() { return std::move(bytes_); }
  std::vector<std::uint8_t>& bytes() { return bytes_; }

 private:
  void little(std::uint64_t value, int width) {
    for (int byte = 0; byte < width; ++byte) bytes_.push_back(std::uint8_t(value >> (8 * byte)));
  }
  std::vector<std::uint8_t> bytes_;
};

// Reads what payload_writer wrote; every shortfall or excess is a decode_error naming the field.
class payload_reader {
 public:
  payload_reader(std::span<const std::uint8_t> bytes, const char* message) : bytes_(bytes), message_(message) {}

  std::uint8_t u8(const char* what) { return take(1, what)[0]; }
  std::uint32_t u32(const char* what) { return std::uint32_t(little(4, what)); }
  std::uint64_t u64(const char* what) { return little(8, what); }
  double f64(const char* what) { return std::bit_cast<double>(u64(what)); }
  std::span<const std::uint8_t> raw(std::size_t size, const char* what) { return take(size, what); }
  /// A count of items of `item_bytes` each, at most `max` and no more than the bytes left hold.
  std::size_t count(std::uint64_t max, std::size_t item_bytes, const char* what) {
    const auto value = u64(what);
    if (value > max)
      throw decode_error(std::string(message_) + ": " + what + " is " + flotilla::detail::grouped(value) +
                         "; the limit is " + flotilla::detail::grouped(max));
    if (value > (bytes_.size() - at_) / item_bytes)
      throw decode_error(std::string(message_) + ": " + what + " is " + flotilla::detail::grouped(value) + " but only " +
                         flotilla::detail::grouped(bytes_.size() - at_) + " bytes remain");
    return std::size_t(value);
  }
  std::vector<std::uint64_t> ids(std::uint64_t max, const char* what) {
    std::vector<std::uint64_t> out(count(max, 8, what));
    for (auto& value : out) value = u64(what);
    return out;
  }
  void expect_end() const {
    if (at_ != bytes_.size())
      throw decode_error(std::string(message_) + ": " + std::to_string(bytes_.size() - at_) + " unexpected bytes at the end");
  }

 private:
  std::span<const std::uint8_t> take(std::size_t size, const char* what) {
    if (bytes_.size() - at_ < size)
      throw decode_error(std::string(message_) + " is truncated: " + what + " needs " + std::to_string(size) + " bytes, " +
                         std::to_string(bytes_.size() - at_) + " remain");
    const auto out = bytes_.subspan(at_, size);
    at_ += size;
    return out;
  }
  std::uint64_t little(int width, const char* what) {
    const auto bytes = take(std::size_t(width), what);
    std::uint64_t value = 0;
    for (int byte = 0; byte < width; ++byte) value |= std::uint64_t(bytes[std::size_t(byte)]) << (8 * byte);
    return value;
  }
  std::span<const std::uint8_t> bytes_;
  std::size_t at_ = 0;
  const char* message_;
};

inline void write_key(payload_writer& out, const key_bytes& key) { out.raw(key); }
inline key_bytes read_key(payload_reader& in, const char* what) {
  key_bytes key{};
  const auto bytes = in.raw(key.size(), what);
  std::memcpy(key.data(), bytes.data(), key.size());
  return key;
}
inline void write_keys(payload_writer& out, const advertised_keys& keys) {
  out.u64(keys.index);
  write_key(out, keys.cipher_public);
  write_key(out, keys.mask_public);
}
inline advertised_keys read_keys(payload_reader& in) {
  advertised_keys keys;
  keys.index = in.u64("index");
  keys.cipher_public = read_key(in, "cipher public key");
  keys.mask_public = read_key(in, "mask public key");
  return keys;
}
inline void write_share(payload_writer& out, const share& held) {
  out.u64(held.x);
  for (const auto piece : held.y) out.u64(piece);
}
inline share read_share(payload_reader& in) {
  share held;
  held.x = in.u64("share point");
  for (auto& piece : held.y) piece = in.u64("share piece");
  return held;
}

}  // namespace detail

// ---- Stage 1: the aggregator's round setup out, a learner's public keys back.

[[nodiscard]] inline std::vector<std::uint8_t> encode(const round_setup& setup) {
  detail::payload_writer out;
  out.u64(setup.round);
  out.u64(setup.learners);
  out.u64(setup.index);
  out.u64(setup.threshold);
  out.u64(setup.values);
  out.f64(setup.quantized.clipping_range);
  out.u64(setup.quantized.quantization_range);
  out.u32(setup.quantized.modulus_bits);
  out.u64(std::uint64_t(setup.encoding.max_weight));
  out.f64(setup.encoding.clip_norm);
  out.f64(setup.encoding.noise_stddev);
  out.ids(setup.neighbours);
  return out.take();
}
/// @throws decode_error for a malformed setup or one with more than `max_neighbours` neighbours.
[[nodiscard]] inline round_setup decode_round_setup(std::span<const std::uint8_t> bytes, std::size_t max_neighbours) {
  detail::payload_reader in(bytes, "a secure round's setup");
  round_setup setup;
  setup.round = in.u64("round");
  setup.learners = in.u64("learners");
  setup.index = in.u64("index");
  setup.threshold = std::size_t(in.u64("threshold"));
  setup.values = std::size_t(in.u64("values"));
  setup.quantized.clipping_range = in.f64("clipping range");
  setup.quantized.quantization_range = in.u64("quantization range");
  setup.quantized.modulus_bits = in.u32("modulus bits");
  setup.encoding.max_weight = std::int64_t(in.u64("max weight"));
  setup.encoding.clip_norm = in.f64("clip norm");
  setup.encoding.noise_stddev = in.f64("noise standard deviation");
  setup.neighbours = in.ids(max_neighbours, "neighbour count");
  in.expect_end();
  return setup;
}

[[nodiscard]] inline std::vector<std::uint8_t> encode(const advertised_keys& keys) {
  detail::payload_writer out;
  detail::write_keys(out, keys);
  return out.take();
}
[[nodiscard]] inline advertised_keys decode_advertised_keys(std::span<const std::uint8_t> bytes) {
  detail::payload_reader in(bytes, "advertised keys");
  auto keys = detail::read_keys(in);
  in.expect_end();
  return keys;
}

// ---- Stage 2: the neighbours' keys out, sealed shares back.

[[nodiscard]] inline std::vector<std::uint8_t> encode(std::span<const advertised_keys> keys) {
  detail::payload_writer out;
  out.u64(keys.size());
  for (const auto& one : keys) detail::write_keys(out, one);
  return out.take();
}
/// @throws decode_error for a malformed list or one longer than `max_keys`.
[[nodiscard]] inline std::vector<advertised_keys> decode_key_list(std::span<const std::uint8_t> bytes, std::size_t max_keys) {
  detail::payload_reader in(bytes, "a list of advertised keys");
  std::vector<advertised_keys> out(in.count(max_keys, 8 + 64, "key count"));
  for (auto& keys : out) keys = detail::read_keys(in);
  in.expect_end();
  return out;
}

[[nodiscard]] inline std::vector<std::uint8_t> encode(std::span<const sealed_shares> messages) {
  detail::payload_writer out;
  out.u64(messages.size());
  for (const auto& message : messages) {
    if (message.ciphertext.size() != sealed_shares_bytes)
      throw usage_error("a sealed share message holds " + std::to_string(message.ciphertext.size()) + " bytes, not " +
                        std::to_string(sealed_shares_bytes));
    out.u64(message.from);
    out.u64(message.to);
    out.raw(message.ciphertext);
  }
  return out.take();
}
/// @throws decode_error for a malformed list or one longer than `max_messages`.
[[nodiscard]] inline std::vector<sealed_shares> decode_share_list(std::span<const std::uint8_t> bytes,
                                                                 std::size_t max_messages) {
  detail::payload_reader in(bytes, "a list of sealed shares");
  std::vector<sealed_shares> out(in.count(max_messages, 16 + sealed_shares_bytes, "share message count"));
  for (auto& message : out) {
    message.from = in.u64("sender");
    message.to = in.u64("recipient");
    const auto ciphertext = in.raw(sealed_shares_bytes, "ciphertext");
    message.ciphertext.assign(ciphertext.begin(), ciphertext.end());
  }
  in.expect_end();
  return out;
}

// ---- Stage 3: the shares addressed to a learner out (with the global parameters), its masked
// input back.

[[nodiscard]] inline std::vector<std::uint8_t> encode(const masked_input& input) {
  detail::payload_writer out;
  out.u64(input.index);
  out.ids(input.masked_with);
  out.u64(input.values.size());
  auto& bytes = out.bytes();
  const auto at = bytes.size();
  bytes.resize(at + 4 * input.values.size());
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(bytes.data() + at, input.values.data(), 4 * input.values.size());
  } else {
    for (std::size_t i = 0; i < input.values.size(); ++i)
      for (int byte = 0; byte < 4; ++byte) bytes[at + 4 * i + std::size_t(byte)] = std::uint8_t(input.values[i] >> (8 * byte));
  }
  return out.take();
}
/// @throws decode_error for a malformed input, more than `max_neighbours` neighbours, or a
///   length other than `values` (the round's: refused before anything that size is allocated).
[[nodiscard]] inline masked_input decode_masked_input(std::span<const std::uint8_t> bytes, std::size_t max_neighbours,
                                                     std::size_t values) {
  detail::payload_reader in(bytes, "a masked input");
  masked_input input;
  input.index = in.u64("index");
  input.masked_with = in.ids(max_neighbours, "neighbour count");
  const auto count = in.count(values, 4, "value count");
  if (count != values)
    throw decode_error("a masked input holds " + flotilla::detail::grouped(count) + " values; the round expects " +
                       flotilla::detail::grouped(values));
  const auto raw = in.raw(4 * count, "values");
  input.values.resize(count);
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(input.values.data(), raw.data(), raw.size());
  } else {
    for (std::size_t i = 0; i < count; ++i)
      for (int byte = 0; byte < 4; ++byte) input.values[i] |= std::uint32_t(raw[4 * i + std::size_t(byte)]) << (8 * byte);
  }
  in.expect_end();
  return input;
}

// ---- Stage 4: whose shares to hand over out, the shares back.

[[nodiscard]] inline std::vector<std::uint8_t> encode(const unmask_request& request) {
  detail::payload_writer out;
  out.ids(request.self_seed_of);
  out.ids(request.mask_key_of);
  return out.take();
}
[[nodiscard]] inline unmask_request decode_unmask_request(std::span<const std::uint8_t> bytes, std::size_t max_neighbours) {
  detail::payload_reader in(bytes, "an unmasking request");
  unmask_request request;
  request.self_seed_of = in.ids(max_neighbours, "self-seed count");
  request.mask_key_of = in.ids(max_neighbours, "mask-key count");
  in.expect_end();
  return request;
}

[[nodiscard]] inline std::vector<std::uint8_t> encode(const unmask_response& response) {
  detail::payload_writer out;
  out.u64(response.index);
  for (const auto* list : {&response.self_seed_shares, &response.mask_key_shares}) {
    out.u64(list->size());
    for (const auto& [owner, held] : *list) {
      out.u64(owner);
      detail::write_share(out, held);
    }
  }
  return out.take();
}
[[nodiscard]] inline unmask_response decode_unmask_response(std::span<const std::uint8_t> bytes, std::size_t max_neighbours) {
  detail::payload_reader in(bytes, "an unmasking response");
  unmask_response response;
  response.index = in.u64("index");
  for (auto* list : {&response.self_seed_shares, &response.mask_key_shares}) {
    list->resize(in.count(max_neighbours, 8 * (2 + pieces_per_secret), "share count"));
    for (auto& [owner, held] : *list) {
      owner = in.u64("share owner");
      held = detail::read_share(in);
    }
  }
  in.expect_end();
  return response;
}

}  // namespace flotilla::secure_aggregation

#pragma once
// The binary wire form of parameters and messages, through cereal's portable binary archives.
//
// Every encoded buffer starts (after cereal's one endianness byte) with an envelope: magic
// "FLTL", a format version and what the buffer holds. The scalars of a parameter set go through
// as one binary block at the end of the message. Input is untrusted: every length prefix is
// checked against the configured limits and against the bytes actually left before anything is
// allocated, and every failure is a `decode_error`.
//
// Model-sized messages need not be copied whole on either side: a writer may leave large blocks
// where they live and list them for a gathered write, and a reader may decode a message from its
// first bytes and say where its final block's remaining bytes belong (wire/messages.hpp).

#include <cereal/archives/portable_binary.hpp>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <istream>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "flotilla/compression/codec.hpp"
#include "flotilla/concepts/parameter_set.hpp"
#include "flotilla/concepts/wire_codable.hpp"
#include "flotilla/detail/aligned_allocator.hpp"
#include "flotilla/detail/byte_streams.hpp"
#include "flotilla/detail/text.hpp"
#include "flotilla/errors.hpp"
#include "flotilla/fwd.hpp"
#include "flotilla/parameters.hpp"

namespace flotilla {

/// The version of the wire format this build writes and reads.
/// Version 2 (Flotilla 0.3) opened task kinds to user-defined stages and moved the checkpoint
/// format to the persistence layer. Version 3 (Flotilla 0.4) carries settings as numbers,
/// integers or text. Version 4 (Flotilla 0.6) gives tasks and replies a byte payload for the
/// stages of multi-stage rounds (secure aggregation). Version 5 (Flotilla 0.8) names the codec a
/// fit reply should use in every task and lets parameters and updates travel coded
/// (compression/codec.hpp).
inline constexpr std::uint16_t wire_format_version = 5;
/// "FLTL" as a little-endian 32-bit number: the first bytes of every encoded buffer.
inline constexpr std::uint32_t wire_magic = 0x4C544C46;

/// What an encoded buffer holds, written after the version.
enum class wire_content : std::uint8_t { parameters = 1, task = 2, reply = 3, checkpoint = 4 };

/// Encoded bytes: cache-aligned, not zero-filled on resize, and recycled when large (see
/// detail/aligned_allocator.hpp), because wire buffers are as large as the model.
using byte_buffer = std::vector<std::byte, detail::uninitialized_allocator<std::byte>>;

/// Bounds on what a decoder accepts; input beyond them is rejected before allocation.
struct decode_limits {
  std::uint64_t max_scalars = std::uint64_t{1} << 32;  ///< scalars in one parameter set
  std::uint32_t max_tensors = 1u << 16;                 ///< tensors in one layout
  std::uint32_t max_rank = 8;                           ///< dimensions of one tensor
  std::uint32_t max_string = 1u << 12;                  ///< bytes in a name or metric key
  std::uint32_t max_entries = 1u << 12;                 ///< entries in a metrics or config map
  std::uint64_t max_payload = std::uint64_t{1} << 34;   ///< bytes of a stage's payload (task::payload)
};

/// A block left out of an encoded buffer, to be sent from where it lives: it belongs at byte
/// `offset` of the buffer.
struct external_block {
  std::size_t offset = 0;
  std::span<const std::byte> bytes;
};

/// Appends cereal-encoded values to a byte vector. Given a list of external blocks, it records
/// scalar blocks of at least `external_threshold` bytes there instead of copying them.
class wire_writer {
 public:
  static constexpr std::size_t external_threshold = std::size_t{1} << 16;

  explicit wire_writer(byte_buffer& out, std::vector<external_block>* external = nullptr)
      : bytes_(out), external_(external), buffer_(out), stream_(&buffer_), archive_(stream_) {}

  template <class T>
    requires std::is_arithmetic_v<T>
  void write(T value) { archive_(value); }
  void write_bytes(const void* data, std::size_t size) {
    archive_(cereal::binary_data(static_cast<const char*>(data), size));
  }
  // The output archive writes in this machine's byte order, so a block left out is already in
  // its wire form. The stream buffer has no put area: bytes_.size() is always the write offset.
  template <std::floating_point S>
  void write_block(std::span<const S> scalars) {
    if (omitted_) {  // the values travel coded, elsewhere in the message
      if (scalars.size() != *omitted_)
        throw usage_error("a coded block of " + std::to_string(*omitted_) + " values stands for a block of " +
                          std::to_string(scalars.size()) + ": a parameter codec that writes its values in several "
                          "blocks cannot travel coded");
      omitted_.reset();
      return;
    }
    if (external_ && scalars.size_bytes() >= external_threshold)
      external_->push_back({bytes_.size(), std::as_bytes(scalars)});
    else
      archive_(cereal::binary_data(scalars.data(), scalars.size_bytes()));
  }
  void write_string(const std::string& text) {
    write(static_cast<std::uint32_t>(text.size()));
    write_bytes(text.data(), text.size());
  }
  /// The next block, of `values` scalars, is left out: its values were written coded before it
  /// (see wire_reader::supply_block).
  void omit_block(std::uint64_t values) { omitted_ = values; }

 private:
  byte_buffer& bytes_;
  std::vector<external_block>* external_;
  std::optional<std::uint64_t> omitted_;
  detail::vector_output_buffer<byte_buffer> buffer_;
  std::ostream stream_;
  cereal::PortableBinaryOutputArchive archive_;
};

namespace detail {
// Thrown by a reader over a message's first bytes when it needs bytes that have not arrived;
// the streaming decoders catch it and report that the whole message is needed.
struct incomplete_input {};
}  // namespace detail

/// Reads cereal-encoded values from a byte span, checking every length against what is left.
///
/// It may also read a message of `total` bytes of which only the first have arrived: lengths are
/// checked against the whole message, and a final block may be left for the caller to receive
/// in place (see read_final_block and deferred()).
class wire_reader {
 public:
  wire_reader(std::span<const std::byte> bytes, decode_limits limits) : wire_reader(bytes, bytes.size(), limits) {}

  /// A reader over the first bytes of a `total`-byte message (`total` >= `first.size()`).
  wire_reader(std::span<const std::byte> first, std::uint64_t total, decode_limits limits)
      : limits_(limits),
        not_arrived_(total - first.size()),
        native_order_(!first.empty() && first[0] == static_cast<std::byte>(std::endian::native == std::endian::little)),
        buffer_(first),
        stream_(&buffer_),
        archive_(guarded_archive(stream_, not_arrived_)) {}

  [[nodiscard]] const decode_limits& limits() const { return limits_; }
  /// Bytes of the message not read yet, arrived or not (a supplied block counts as its float32 bytes).
  [[nodiscard]] std::uint64_t remaining() const { return buffer_.remaining() + not_arrived_ + supplied_bytes_; }

  template <class T>
    requires std::is_arithmetic_v<T>
  [[nodiscard]] T read(const char* what) {
    require(sizeof(T), what);
    T value{};
    archive_(value);
    return value;
  }

  /// A count of items, each at least `min_item_bytes` long, that may not exceed `max`.
  [[nodiscard]] std::uint64_t read_count(std::uint64_t max, std::size_t min_item_bytes, const char* what) {
    const auto count = read<std::uint64_t>(what);
    if (count > max)
      throw decode_error(std::string(what) + " is " + detail::grouped(count) + "; the limit is " +
                         detail::grouped(max));
    if (min_item_bytes != 0 && count > remaining() / min_item_bytes)
      throw decode_error(std::string(what) + " is " + detail::grouped(count) + " but only " +
                         detail::grouped(remaining()) + " bytes remain (truncated or corrupt input)");
    return count;
  }

  [[nodiscard]] std::string read_string(const char* what) {
    const auto size = read<std::uint32_t>(what);
    if (size > limits_.max_string)
      throw decode_error(std::string(what) + " is " + detail::grouped(size) +
                         " bytes long; the limit is " + detail::grouped(limits_.max_string));
    require(size, what);
    std::string text(size, '\0');
    archive_(cereal::binary_data(text.data(), size));
    return text;
  }

  void read_bytes(void* destination, std::size_t size, const char* what) {
    require(size, what);
    archive_(cereal::binary_data(destination, size));
  }

  template <std::floating_point S>
  void read_block(std::span<S> scalars, const char* what) {
    if (supplied_) return read_supplied(scalars, what);
    require(scalars.size_bytes(), what);
    archive_(cereal::binary_data(scalars.data(), scalars.size_bytes()));
  }

  /// Reads the values of the parameter set a codec is decoding, the last thing in its message.
  /// When the reader holds only the message's first bytes, the block's missing tail is left for
  /// the caller, who finds it again in the decoded object (started_decode::rest), so the values
  /// may live inline or on the heap.
  template <std::floating_point S>
  void read_final_block(std::span<S> scalars, const char* what) {
    if (supplied_) return read_supplied(scalars, what);
    const auto arrived = buffer_.remaining();
    if (scalars.size_bytes() <= arrived || not_arrived_ == 0 || scalars.size_bytes() != remaining() || !native_order_)
      return read_block(scalars, what);
    auto destination = std::as_writable_bytes(scalars);
    archive_(cereal::binary_data(destination.data(), arrived));  // bytes, so never reordered
    deferred_ = destination.subspan(arrived);
    not_arrived_ = 0;
  }

  /// The next block's values come from `coded` (read earlier in the message, and kept alive by
  /// the caller until the block is read): they are checked, then decoded into place.
  void supply_block(const compression::coded_values& coded) {
    supplied_ = &coded;
    supplied_bytes_ = 4 * coded.count;
  }

  /// The bytes of the final block that had not arrived (empty unless it was left unfinished).
  [[nodiscard]] std::span<std::byte> deferred() const { return deferred_; }

  /// @throws decode_error unless every byte was consumed.
  void expect_end() const {
    if (remaining() != 0)
      throw decode_error(detail::grouped(remaining()) + " unexpected bytes after the end of the message");
  }

 private:
  template <std::floating_point S>
  void read_supplied(std::span<S> scalars, const char* what) {
    const auto& coded = *std::exchange(supplied_, nullptr);
    supplied_bytes_ = 0;
    if constexpr (!std::is_same_v<S, float>) {
      throw decode_error(std::string(what) + ": coded values decode to 32-bit floats; these parameters hold " +
                         std::to_string(8 * sizeof(S)) + "-bit scalars");
    } else {
      if (auto problem = compression::check(coded, coded.spec, scalars.size()))
        throw decode_error(std::string(what) + ": " + *problem);
      compression::decode(coded, scalars);
    }
  }

  void require(std::size_t bytes, const char* what) const {
    const auto left = buffer_.remaining() + not_arrived_;  // real bytes: a supplied block's are not
    if (bytes > left)
      throw decode_error("truncated input: " + std::string(what) + " needs " + detail::grouped(bytes) +
                         " bytes but only " + detail::grouped(left) + " remain");
    if (bytes > buffer_.remaining()) throw detail::incomplete_input{};
  }
  // The portable archive reads its endianness byte on construction; an empty input fails there.
  static cereal::PortableBinaryInputArchive guarded_archive(std::istream& stream, std::uint64_t not_arrived) {
    if (stream.rdbuf()->in_avail() <= 0) {
      if (not_arrived > 0) throw detail::incomplete_input{};
      throw decode_error("truncated input: no bytes to decode");
    }
    return cereal::PortableBinaryInputArchive(stream);
  }

  decode_limits limits_;
  std::uint64_t not_arrived_ = 0;
  bool native_order_ = false;  // blocks arrive in this machine's byte order, so may land in place
  std::span<std::byte> deferred_;
  const compression::coded_values* supplied_ = nullptr;
  std::uint64_t supplied_bytes_ = 0;
  detail::span_input_buffer buffer_;
  std::istream stream_;
  cereal::PortableBinaryInputArchive archive_;
};

namespace detail {
// Every parameter codec starts with its scalar width; a reader refuses any other.
template <std::floating_point S>
void write_scalar_width(wire_writer& out) {
  out.write(static_cast<std::uint8_t>(sizeof(S)));
}
template <std::floating_point S>
void read_scalar_width(wire_reader& in) {
  const auto scalar_bytes = in.read<std::uint8_t>("scalar size");
  if (scalar_bytes != sizeof(S))
    throw decode_error("parameters hold " + std::to_string(8 * scalar_bytes) + "-bit scalars; this side expects " +
                       std::to_string(8 * sizeof(S)) + "-bit");
}

// Width, count and values: all a receiver needs when its type tells it the layout (the
// fixed-shape and counted codecs below).
template <ParameterSet P>
void write_counted_values(wire_writer& out, const P& params) {
  write_scalar_width<typename P::scalar_type>(out);
  out.write(static_cast<std::uint64_t>(params.values().size()));
  out.write_block(params.values());
}
}  // namespace detail

// wire_codec<P> is declared in fwd.hpp and its contract is concepts/wire_codable.hpp; the codec of
// Flotilla's own parameter type:

template <std::floating_point Scalar>
struct wire_codec<parameters<Scalar>> {
  static void write(wire_writer& out, const parameters<Scalar>& params) {
    detail::write_scalar_width<Scalar>(out);
    const auto& tensors = params.layout().tensors();
    out.write(static_cast<std::uint64_t>(tensors.size()));
    for (const auto& tensor : tensors) {
      out.write_string(tensor.name);
      out.write(static_cast<std::uint64_t>(tensor.shape.size()));
      for (auto dimension : tensor.shape) out.write(static_cast<std::uint64_t>(dimension));
    }
    out.write(static_cast<std::uint64_t>(params.size()));
    out.write_block(params.values());
  }

  static parameters<Scalar> read(wire_reader& in) {
    const auto& limits = in.limits();
    detail::read_scalar_width<Scalar>(in);
    // Each tensor takes at least a name length and a rank: 4 + 8 bytes.
    const auto tensor_count = in.read_count(limits.max_tensors, 12, "tensor count");
    std::vector<tensor_spec> tensors(tensor_count);
    std::uint64_t total = 0;
    for (auto& tensor : tensors) {
      tensor.name = in.read_string("tensor name");
      const auto rank = in.read_count(limits.max_rank, 8, "tensor rank");
      tensor.shape.resize(rank);
      std::uint64_t size = 1;
      for (auto& dimension : tensor.shape) {
        const auto value = in.read<std::uint64_t>("tensor dimension");
        if (value != 0 && size > limits.max_scalars / value)
          throw decode_error("tensor '" + tensor.name + "' has more than " + detail::grouped(limits.max_scalars) +
                             " scalars, the limit");
        size *= value;
        dimension = static_cast<std::size_t>(value);
      }
      total += size;
      if (total > limits.max_scalars)
        throw decode_error("parameter layout holds more than " + detail::grouped(limits.max_scalars) +
                           " scalars, the limit");
    }
    const auto count = in.read_count(limits.max_scalars, sizeof(Scalar), "scalar count");
    if (count != total)
      throw decode_error("parameter payload has " + detail::grouped(count) + " scalars; its layout describes " +
                         detail::grouped(total));
    tensor_layout layout = [&] {
      try {
        return tensor_layout(std::move(tensors));
      } catch (const layout_error& error) {
        throw decode_error(error.what());
      }
    }();
    parameters<Scalar> params(std::make_shared<const tensor_layout>(std::move(layout)), for_overwrite);
    in.read_final_block(params.values(), "parameter values");
    return params;
  }
};

/// The codec of a type whose shape its type fixes: its scalar width, count and values. The reader
/// fills a default-constructed P, so the count must be P's own.
template <FixedShapeParameters P>
struct wire_codec<P> {
  using scalar_type = typename P::scalar_type;

  static void write(wire_writer& out, const P& params) { detail::write_counted_values(out, params); }

  static P read(wire_reader& in) {
    detail::read_scalar_width<scalar_type>(in);
    P params{};
    const auto expected = params.values().size();
    const auto count = in.read_count(expected, sizeof(scalar_type), "scalar count");
    if (count != expected)
      throw decode_error("parameters carry " + detail::grouped(count) + " scalars; this side's type holds " +
                         detail::grouped(expected));
    in.read_final_block(params.values(), "parameter values");
    return params;
  }
};

/// The codec of a type whose layout is its scalar count: its scalar width, count and values. The
/// reader bounds the count before it constructs a P of that size.
template <CountedParameters P>
struct wire_codec<P> {
  using scalar_type = typename P::scalar_type;

  static void write(wire_writer& out, const P& params) { detail::write_counted_values(out, params); }

  static P read(wire_reader& in) {
    detail::read_scalar_width<scalar_type>(in);
    const auto count = in.read_count(in.limits().max_scalars, sizeof(scalar_type), "scalar count");
    P params(static_cast<std::size_t>(count));
    if (params.values().size() != count || params.layout() != count)
      throw decode_error("a parameter set made for " + detail::grouped(count) + " scalars holds " +
                         detail::grouped(params.values().size()) + " (CountedParameters: P(count) must hold count)");
    in.read_final_block(params.values(), "parameter values");
    return params;
  }
};

namespace detail {

inline void write_envelope(wire_writer& out, wire_content content) {
  out.write(wire_magic);
  out.write(wire_format_version);
  out.write(static_cast<std::uint8_t>(content));
}

inline void read_envelope(wire_reader& in, wire_content expected) {
  const auto magic = in.read<std::uint32_t>("magic number");
  if (magic != wire_magic) throw decode_error("not a Flotilla message: wrong magic number");
  const auto version = in.read<std::uint16_t>("format version");
  // A checkpoint holds no settings (version 3) and no payloads (version 4): version 2's reads the same.
  const std::uint16_t oldest = expected == wire_content::checkpoint ? 2 : wire_format_version;
  if (version < oldest || version > wire_format_version)
    throw decode_error("message has format version " + std::to_string(version) + "; this build reads version " +
                       (oldest == wire_format_version ? "" : std::to_string(oldest) + " to ") +
                       std::to_string(wire_format_version));
  const auto content = in.read<std::uint8_t>("content type");
  if (content != static_cast<std::uint8_t>(expected))
    throw decode_error("message holds content type " + std::to_string(content) + "; expected " +
                       std::to_string(static_cast<int>(expected)));
}

inline void write_map(wire_writer& out, const std::map<std::string, double>& map) {
  out.write(static_cast<std::uint64_t>(map.size()));
  for (const auto& [key, value] : map) {
    out.write_string(key);
    out.write(value);
  }
}

inline std::map<std::string, double> read_map(wire_reader& in, const char* what) {
  // Each entry takes at least a key length and a double: 4 + 8 bytes.
  const auto count = in.read_count(in.limits().max_entries, 12, what);
  std::map<std::string, double> map;
  for (std::uint64_t i = 0; i < count; ++i) {
    auto key = in.read_string("metric name");
    const auto value = in.read<double>("metric value");
    if (!map.emplace(std::move(key), value).second) throw decode_error(std::string(what) + " repeats a key");
  }
  return map;
}

// Settings: each value tagged 0 (number), 1 (integer) or 2 (text).
inline void write_settings(wire_writer& out, const settings& values) {
  out.write(static_cast<std::uint64_t>(values.size()));
  for (const auto& [key, value] : values) {
    out.write_string(key);
    out.write(static_cast<std::uint8_t>(value.index()));
    if (const auto* number = std::get_if<double>(&value)) out.write(*number);
    else if (const auto* integer = std::get_if<std::int64_t>(&value)) out.write(*integer);
    else out.write_string(std::get<std::string>(value));
  }
}

inline settings read_settings(wire_reader& in, const char* what) {
  // Each entry takes at least a key length, a tag and a text length: 4 + 1 + 4 bytes.
  const auto count = in.read_count(in.limits().max_entries, 9, what);
  settings values;
  for (std::uint64_t i = 0; i < count; ++i) {
    auto key = in.read_string("setting name");
    setting value;
    switch (in.read<std::uint8_t>("setting type")) {
      case 0: value = in.read<double>("setting number"); break;
      case 1: value = in.read<std::int64_t>("setting integer"); break;
      case 2: value = in.read_string("setting text"); break;
      default: throw decode_error(std::string(what) + ": setting '" + detail::printable(key, 64) + "' has an unknown type");
    }
    if (!values.emplace(std::move(key), std::move(value)).second) throw decode_error(std::string(what) + " repeats a key");
  }
  return values;
}

// A task kind: any but 0 (the set is open; see fwd.hpp).
inline task_kind read_kind(wire_reader& in) {
  const auto kind = in.read<std::uint8_t>("task kind");
  if (kind == 0) throw decode_error("task kind 0 names no task");  // the set is open: any other kind is carried
  return static_cast<task_kind>(kind);
}

// cereal reports truncation and stream failures as cereal::Exception; callers see one type.
template <class F>
auto translating_cereal_errors(F&& decode) {
  try {
    return decode();
  } catch (const cereal::Exception& error) {
    throw decode_error(std::string("malformed input: ") + error.what());
  }
}


// Writes the envelope and then `body(writer)`; `payload_bytes` sizes the buffer once.
template <class Body>
byte_buffer encode_message(wire_content content, std::size_t payload_bytes, Body body) {
  byte_buffer bytes;
  bytes.reserve(payload_bytes + 512);
  wire_writer out(bytes);
  write_envelope(out, content);
  body(out);
  return bytes;
}

// Checks the envelope, reads with `body(reader)`, and insists every byte was used.
template <class Body>
auto decode_message(std::span<const std::byte> bytes, const decode_limits& limits, wire_content content, Body body) {
  return translating_cereal_errors([&] {
    wire_reader in(bytes, limits);
    read_envelope(in, content);
    auto decoded = body(in);
    in.expect_end();
    return decoded;
  });
}

}  // namespace detail

/// A message decoded from its first bytes, and how many of its bytes are still to come.
///
/// The missing bytes are the tail of the message's parameter values (the final block). rest()
/// finds them where the message is now, so the message may be moved first, even when its
/// parameter type holds its values inline; it must not move between rest() and the last byte.
template <class Message>
struct started_decode {
  Message message;
  std::size_t rest_bytes = 0;

  /// Where the message's remaining bytes belong: write them there, in order, before using the
  /// message's parameters. A transport receives the model-sized tail straight into place.
  [[nodiscard]] std::span<std::byte> rest() { return final_bytes(message, rest_bytes); }

  /// The last `bytes` bytes of `m`'s parameter values. The decoders create the parameters
  /// non-const, so writing through a task's pointer-to-const is allowed.
  [[nodiscard]] static std::span<std::byte> final_bytes(Message& m, std::size_t bytes) {
    if (bytes == 0) return {};
    auto& params = *m.parameters;
    using P = std::remove_cvref_t<decltype(params)>;
    return std::as_writable_bytes(const_cast<P&>(params).values()).last(bytes);
  }
};

namespace detail {
// Decodes a `total`-byte message from its `first` bytes, or returns nothing when the message
// cannot be decoded before all of it has arrived (then decode it whole). Malformed input throws
// decode_error as the whole decoders do.
template <class Body>
auto decode_message_start(std::span<const std::byte> first, std::uint64_t total, const decode_limits& limits,
                          wire_content content, Body body)
    -> std::optional<started_decode<decltype(body(std::declval<wire_reader&>()))>> {
  try {
    return translating_cereal_errors([&] {
      wire_reader in(first, total, limits);
      read_envelope(in, content);
      auto decoded = body(in);
      in.expect_end();
      return std::optional{started_decode<decltype(decoded)>{std::move(decoded), in.deferred().size()}};
    });
  } catch (const incomplete_input&) {
    return std::nullopt;
  }
}
}  // namespace detail

/// Encodes a parameter set (envelope, layout, one block of scalars).
template <class P>
[[nodiscard]] byte_buffer encode(const P& params) requires WireCodable<P>
{
  return detail::encode_message(wire_content::parameters, params.values().size_bytes(),
                                [&](wire_writer& out) { wire_codec<P>::write(out, params); });
}

/// Decodes a parameter set. @throws decode_error on any malformed, truncated or oversized input.
template <WireCodable P>
[[nodiscard]] P decode(std::span<const std::byte> bytes, const decode_limits& limits = {}) {
  return detail::decode_message(bytes, limits, wire_content::parameters,
                                [](wire_reader& in) { return wire_codec<P>::read(in); });
}

/// A message encoded without copying its large scalar blocks: `bytes` with each of `blocks`
/// spliced in at its offset. The blocks point into the encoded message, which must outlive this.
struct gathered_encoding {
  byte_buffer bytes;
  std::vector<external_block> blocks;

  /// Calls `piece(span)` for each non-empty piece of the message, in order.
  template <class F>
  void for_each_piece(F&& piece) const {
    std::size_t at = 0;
    const std::span<const std::byte> all(bytes);
    for (const auto& block : blocks) {
      if (block.offset > at) piece(all.subspan(at, block.offset - at));
      if (!block.bytes.empty()) piece(block.bytes);
      at = block.offset;
    }
    if (at < all.size()) piece(all.subspan(at));
  }
};

}  // namespace flotilla

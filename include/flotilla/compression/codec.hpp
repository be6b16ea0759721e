#pragma once
// Codecs for parameters on the wire, chosen per federation for each direction on its own
// (coordinator_options::compression) and named in the protocol by their text form, so a side that
// does not know one refuses it by name:
//   float16, bfloat16   every value in 16 bits, rounded to nearest (float_formats.hpp)
//   int8, int4          blockwise quantization with a float32 scale per block and stochastic
//                       rounding (blockwise.hpp); "int8:64" sets the block to 64 values
//   top_k               the largest share of a learner's change, the rest carried to its next
//                       round (top_k.hpp; replies only); "top_k:0.01" sends 1%
// A learner's reply carries its change to the parameters it was sent, so quantization spends its
// levels on the update, not on the weights; the global parameters go to learners whole.

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "flotilla/compression/blockwise.hpp"
#include "flotilla/compression/float_formats.hpp"
#include "flotilla/compression/top_k.hpp"
#include "flotilla/detail/aligned_allocator.hpp"
#include "flotilla/detail/parallel.hpp"
#include "flotilla/errors.hpp"

namespace flotilla::compression {

enum class codec : std::uint8_t { none, float16, bfloat16, int8, int4, top_k };

inline constexpr std::array<std::string_view, 6> codec_names{"none", "float16", "bfloat16", "int8", "int4", "top_k"};

[[nodiscard]] inline std::string_view name_of(codec kind) { return codec_names.at(static_cast<std::size_t>(kind)); }

/// A codec and its one setting.
struct codec_spec {
  codec kind = codec::none;
  std::uint32_t block = 256;  ///< int8, int4: values per block, each block with a float32 scale
  double fraction = 0.01;     ///< top_k: the share of values sent, k = ceil(fraction * values)

  /// @throws configuration_error unless the block holds 2 to 2^20 values and the fraction is in
  /// (0, 0.5] (beyond half, indices and values together outweigh float32).
  void validate() const {
    if (kind == codec::int8 || kind == codec::int4) format().validate();
    if (kind == codec::top_k && !(fraction > 0 && fraction <= 0.5))
      throw configuration_error("top_k's fraction must be in (0, 0.5]; got " + std::to_string(fraction));
  }

  /// The text form named on the wire: "float16", "int8:256", "top_k:0.01".
  [[nodiscard]] std::string name() const {
    std::string text(name_of(kind));
    if (kind == codec::int8 || kind == codec::int4) text += ":" + std::to_string(block);
    if (kind == codec::top_k) {
      char number[32];  // the shortest text that reads back as the same double
      const auto written = std::to_chars(number, number + sizeof number, fraction).ptr;
      text += ":";
      text.append(number, written);
    }
    return text;
  }

  [[nodiscard]] blockwise_format format() const { return {.bits = kind == codec::int4 ? 4u : 8u, .block = block}; }
  /// top_k: the most entries a reply for `values` values carries.
  [[nodiscard]] std::uint64_t max_entries(std::uint64_t values) const {
    return std::min<std::uint64_t>(values, std::max<std::uint64_t>(1, std::uint64_t(std::ceil(fraction * double(values)))));
  }
  /// The most bytes `values` values take in this codec (exact, except top_k's largest).
  [[nodiscard]] std::uint64_t max_bytes(std::uint64_t values) const {
    switch (kind) {
      case codec::none: return 4 * values;
      case codec::float16:
      case codec::bfloat16: return 2 * values;
      case codec::int8:
      case codec::int4: return format().encoded_size(values);
      case codec::top_k: return 16 + 8 * max_entries(values);
    }
    return 0;
  }

  /// Equal when they code the same way (a setting the codec does not use is ignored).
  friend bool operator==(const codec_spec& a, const codec_spec& b) { return a.name() == b.name(); }
};

/// @brief The codec a text form names: "none", "float16", "bfloat16", "int8[:block]",
/// "int4[:block]" or "top_k[:fraction]".
/// @throws configuration_error naming the text when no codec has that name or its setting is
/// not a number in range.
[[nodiscard]] inline codec_spec parse_codec(std::string_view text) {
  const auto colon = text.find(':');
  const auto head = text.substr(0, colon);
  const auto found = std::find(codec_names.begin(), codec_names.end(), head);
  if (found == codec_names.end())
    throw configuration_error("unknown codec '" + std::string(text.substr(0, 64)) +
                              "'; the codecs are none, float16, bfloat16, int8[:block], int4[:block] and top_k[:fraction]");
  codec_spec spec{.kind = static_cast<codec>(found - codec_names.begin())};
  if (colon != std::string_view::npos) {
    const std::string setting(text.substr(colon + 1, 32));
    char* end = nullptr;
    const bool blockwise = spec.kind == codec::int8 || spec.kind == codec::int4;
    if (blockwise) {
      const auto block = std::strtoull(setting.c_str(), &end, 10);
      if (block > 0xFFFFFFFFull) end = nullptr;
      spec.block = std::uint32_t(block);
    } else if (spec.kind == codec::top_k) {
      spec.fraction = std::strtod(setting.c_str(), &end);
    }
    if (setting.empty() || end == nullptr || *end != '\0' || text.size() - colon - 1 > 32)
      throw configuration_error("codec '" + std::string(text.substr(0, 64)) + "': '" + setting + "' is not " +
                                (blockwise ? "a block size" : spec.kind == codec::top_k ? "a fraction" : "a setting it takes"));
  }
  spec.validate();
  return spec;
}

/// The codecs of a federation, one for each direction.
struct options {
  codec_spec to_learners{};    ///< the global parameters in fit tasks (dense codecs only)
  codec_spec to_aggregator{};  ///< learners' fit replies, as their change to what they were sent

  /// @throws configuration_error for top_k towards learners (it sends a change, and the global
  /// parameters go whole) or a codec setting out of range.
  void validate() const {
    if (to_learners.kind == codec::top_k)
      throw configuration_error("compression.to_learners: top_k codes a learner's change; the global parameters go whole "
                                "(choose float16, bfloat16, int8 or int4)");
    to_learners.validate();
    to_aggregator.validate();
  }
  [[nodiscard]] bool any() const { return to_learners.kind != codec::none || to_aggregator.kind != codec::none; }
};

/// Coded bytes: not zero-filled when sized, and recycled when model-sized (as wire buffers are).
using byte_vector = std::vector<std::uint8_t, flotilla::detail::uninitialized_allocator<std::uint8_t>>;

/// Values in a codec's form: `count` values, `bytes` their encoding.
struct coded_values {
  codec_spec spec{};
  std::uint64_t count = 0;
  byte_vector bytes{};
};


namespace detail {
// 16-bit codes as little-endian bytes, a stack buffer at a time.
inline constexpr std::size_t code_buffer = 2048;
inline void store_codes(const std::uint16_t* codes, std::size_t n, std::uint8_t* out) {
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(out, codes, 2 * n);
  } else {
    for (std::size_t i = 0; i < n; ++i) {
      out[2 * i] = std::uint8_t(codes[i]);
      out[2 * i + 1] = std::uint8_t(codes[i] >> 8);
    }
  }
}
inline void load_codes(const std::uint8_t* in, std::size_t n, std::uint16_t* codes) {
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(codes, in, 2 * n);
  } else {
    for (std::size_t i = 0; i < n; ++i) codes[i] = std::uint16_t(in[2 * i] | (in[2 * i + 1] << 8));
  }
}

// Values per chunk of a parallel encode: whole blocks, and whole bytes for int4.
inline std::size_t chunk_values(const codec_spec& spec) {
  if (spec.kind != codec::int8 && spec.kind != codec::int4) return std::size_t{1} << 16;
  const std::size_t step = spec.block % 2 ? 2 * std::size_t(spec.block) : spec.block;  // whole bytes for int4
  return std::max<std::size_t>(1, (std::size_t{1} << 16) / step) * step;
}
}  // namespace detail

/// @brief `values` in a dense codec (float16, bfloat16, int8, int4), on `threads` threads (0: one
/// per core) for large inputs; `seed` drives stochastic rounding, and the bytes are the same
/// whatever the number of threads. @throws configuration_error for none or top_k (see
/// top_k_encoder), task_error for a non-finite value in int8 or int4.
[[nodiscard]] inline coded_values encode(std::span<const float> values, const codec_spec& spec, std::uint64_t seed,
                                         std::size_t threads = 0) {
  spec.validate();
  if (spec.kind == codec::none || spec.kind == codec::top_k)
    throw configuration_error("encode(): " + spec.name() + " is not a dense codec");
  coded_values out{spec, values.size(), byte_vector(spec.max_bytes(values.size()))};
  const std::size_t chunk = detail::chunk_values(spec);
  std::atomic<std::size_t> bad{SIZE_MAX};
  flotilla::detail::for_each_piece(values.size(), threads, [&](std::size_t begin, std::size_t end) {
    for (std::size_t at = (begin + chunk - 1) / chunk * chunk; at < end; at += chunk) {  // the chunks starting here
      const std::size_t stop = std::min(values.size(), at + chunk);
      if (spec.kind == codec::int8 || spec.kind == codec::int4) {
        const auto format = spec.format();
        const auto found = detail::encode_blocks(values, format, out.bytes, at / format.block,
                                                 (stop + format.block - 1) / format.block, seed);
        if (found != SIZE_MAX) bad.store(std::min(bad.load(), found));
        continue;
      }
      std::uint16_t codes[detail::code_buffer];
      for (std::size_t i = at; i < stop; i += detail::code_buffer) {
        const auto n = std::min(detail::code_buffer, stop - i);
        if (spec.kind == codec::float16) convert_to_float16(values.subspan(i, n), codes);
        else convert_to_bfloat16(values.subspan(i, n), codes);
        detail::store_codes(codes, n, out.bytes.data() + 2 * i);
      }
    }
  });
  if (bad.load() != SIZE_MAX) throw task_error("the update holds a non-finite value at index " + std::to_string(bad.load()));
  return out;
}

/// @brief `values` (a learner's change) through `encoder`, which keeps what is not sent for the
/// next call.
[[nodiscard]] inline coded_values encode(std::span<const float> values, top_k_encoder& encoder, const codec_spec& spec) {
  const auto bytes = encode_sparse(encoder.encode(values));
  return {spec, values.size(), byte_vector(bytes.begin(), bytes.end())};
}

/// @brief Why `coded` cannot be `count` values in `expected`'s codec, or nothing. Everything a
/// decoder relies on is checked here, before any value is used.
[[nodiscard]] inline std::optional<std::string> check(const coded_values& coded, const codec_spec& expected, std::uint64_t count) {
  if (!(coded.spec == expected))
    return "values coded as " + coded.spec.name() + "; the round uses " + expected.name();
  if (coded.count != count)
    return "coded values hold " + std::to_string(coded.count) + " values; the parameters hold " + std::to_string(count);
  const auto& bytes = coded.bytes;
  switch (coded.spec.kind) {
    case codec::float16:
    case codec::bfloat16: {
      if (bytes.size() != 2 * count)
        return std::string(name_of(coded.spec.kind)) + " values take 2 bytes each: " + std::to_string(bytes.size()) +
               " bytes for " + std::to_string(count) + " values";
      const std::uint16_t exponent = coded.spec.kind == codec::float16 ? 0x7C00 : 0x7F80;
      for (std::size_t i = 0; i < count; ++i)
        if ((std::uint16_t(bytes[2 * i] | (bytes[2 * i + 1] << 8)) & exponent) == exponent)
          return "coded value " + std::to_string(i) + " is not finite";
      return std::nullopt;
    }
    case codec::int8:
    case codec::int4: return check_blockwise(bytes, coded.spec.format(), count);
    case codec::top_k: return check_sparse(bytes, count, coded.spec.max_entries(count));
    case codec::none: return "values coded as none carry nothing";
  }
  return "unknown codec";
}

/// @brief Adds `weight` times the checked values `begin` to `begin + out.size()` to `out`: a fold
/// decodes a slice at a time, so a coded update is never expanded whole.
inline void add_decoded(const coded_values& coded, std::size_t begin, std::span<float> out, float weight) {
  switch (coded.spec.kind) {
    case codec::float16:
    case codec::bfloat16: {
      std::uint16_t codes[detail::code_buffer];
      float decoded[detail::code_buffer];
      for (std::size_t i = 0; i < out.size(); i += detail::code_buffer) {
        const auto n = std::min(detail::code_buffer, out.size() - i);
        detail::load_codes(coded.bytes.data() + 2 * (begin + i), n, codes);
        if (coded.spec.kind == codec::float16) {
          convert_from_float16(codes, std::span(decoded, n));
        } else {
          for (std::size_t j = 0; j < n; ++j) decoded[j] = from_bfloat16(codes[j]);
        }
        for (std::size_t j = 0; j < n; ++j) out[i + j] += weight * decoded[j];
      }
      return;
    }
    case codec::int8:
    case codec::int4: return add_blockwise(coded.bytes, coded.spec.format(), coded.count, begin, out, weight);
    case codec::top_k: return add_sparse(coded.bytes, begin, out, weight);
    case codec::none: return;
  }
}

/// @brief The checked values, whole, into `out` (a learner decoding its task's parameters), on
/// `threads` threads (0: one per core) for large inputs.
inline void decode(const coded_values& coded, std::span<float> out, std::size_t threads = 0) {
  flotilla::detail::for_each_piece(out.size(), threads, [&](std::size_t begin, std::size_t end) {
    const auto piece = out.subspan(begin, end - begin);
    std::fill(piece.begin(), piece.end(), 0.0f);
    add_decoded(coded, begin, piece, 1.0f);
  });
}

}  // namespace flotilla::compression

#pragma once
// std::streambuf adapters so cereal's archives read from a byte span in place and write into
// a growing byte vector, with no intermediate string copies.

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <ios>
#include <span>
#include <streambuf>
#include <vector>

namespace flotilla::detail {

/// Reads a span of bytes it does not own; knows how many bytes are left, so decoders can check
/// a length prefix against the input before allocating anything.
class span_input_buffer : public std::streambuf {
 public:
  explicit span_input_buffer(std::span<const std::byte> bytes) {
    // streambuf's interface is char-typed but never writes through the get area.
    auto* begin = const_cast<char*>(reinterpret_cast<const char*>(bytes.data()));
    setg(begin, begin, begin + bytes.size());
  }
  [[nodiscard]] std::size_t remaining() const { return static_cast<std::size_t>(egptr() - gptr()); }

 protected:
  std::streamsize xsgetn(char* out, std::streamsize count) override {
    const auto available = static_cast<std::streamsize>(remaining());
    const auto taken = std::min(count, available);
    if (taken > 0) std::memcpy(out, gptr(), static_cast<std::size_t>(taken));
    setg(eback(), gptr() + taken, egptr());  // not gbump: it takes an int, reads may be > 2 GiB
    return taken;
  }
};

/// Appends everything written to a byte buffer.
template <class Buffer>
class vector_output_buffer : public std::streambuf {
 public:
  explicit vector_output_buffer(Buffer& out) : out_(out) {}

 protected:
  std::streamsize xsputn(const char* data, std::streamsize count) override {
    const auto* bytes = reinterpret_cast<const std::byte*>(data);
    out_.insert(out_.end(), bytes, bytes + count);
    return count;
  }
  int_type overflow(int_type character) override {
    if (!traits_type::eq_int_type(character, traits_type::eof()))
      out_.push_back(static_cast<std::byte>(character));
    return traits_type::not_eof(character);
  }

 private:
  Buffer& out_;
};

}  // namespace flotilla::detail

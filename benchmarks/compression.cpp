// Each codec's encode and decode against memcpy of the same float32 bytes, side by side, and the
// bytes a fit reply takes on the wire against float32.
// Usage: bench_compression [values=25000000 (100 MB of float32)]
// Decode is what the aggregator's fold does: add a coded update into an accumulator, slice by
// slice (compression::add_decoded over 32,768-value slices).
#include <flotilla/compression/codec.hpp>
#include <flotilla/random.hpp>
#include <flotilla/wire/messages.hpp>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "timing.hpp"

int main(int argc, char** argv) {
  namespace compression = flotilla::compression;
  const std::size_t size = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 25'000'000;
  const double bytes = double(size) * sizeof(float);
  // A learner's change: normal values of several scales, as after a round of SGD.
  std::vector<float> change(size), copy(size), accumulator(size, 0.0f);
  flotilla::random_engine engine(1);
  for (std::size_t i = 0; i < size; ++i) change[i] = float(flotilla::standard_normal(engine) * 1e-3 * double(1 + i % 17));
  const auto memcpy_once = [&] { std::memcpy(copy.data(), change.data(), size * sizeof(float)); };

  using params = flotilla::parameters<float>;
  params layout(flotilla::tensor_layout({{"w", {size}}}));
  const auto float32_reply = flotilla::encode(flotilla::reply<params>{
      .learner = 1, .kind = flotilla::task_kind::fit, .round = 1, .result = {1, {}}, .parameters = layout});

  for (const char* name : {"float16", "bfloat16", "int8:256", "int4:256", "top_k:0.01"}) {
    const auto spec = compression::parse_codec(name);
    const std::string label = std::string(name).substr(0, std::string(name).find(':'));
    compression::top_k_encoder top(spec.fraction);
    compression::coded_values coded;
    const auto encode = [&] {
      coded = spec.kind == compression::codec::top_k ? compression::encode(change, top, spec) : compression::encode(change, spec, 7);
    };
    encode();
    const auto [encoding, copying] = bench::interleaved_best_seconds(5, encode, memcpy_once);
    bench::report(("encode_" + label).c_str(), bytes / encoding / 1e9, "GB/s", "memcpy_GB/s", bytes / copying / 1e9);
    const auto decode = [&] {
      constexpr std::size_t slice = 32768;
      for (std::size_t begin = 0; begin < size; begin += slice)
        compression::add_decoded(coded, begin, std::span(accumulator).subspan(begin, std::min(slice, size - begin)), 0.5f);
    };
    const auto [decoding, copying_again] = bench::interleaved_best_seconds(5, decode, memcpy_once);
    bench::report(("decode_" + label).c_str(), bytes / decoding / 1e9, "GB/s", "memcpy_GB/s", bytes / copying_again / 1e9);
    const auto on_wire = flotilla::encode(flotilla::reply<params>{.learner = 1, .kind = flotilla::task_kind::fit, .round = 1,
                                                                  .result = {1, {}}, .parameters = std::nullopt,
                                                                  .payload = {}, .coded_update = coded});
    bench::report(("reply_bytes_" + label).c_str(), double(on_wire.size()), "bytes", "float32_reply_bytes",
                  double(float32_reply.size()));
  }
}

// Encode + decode of a parameter set against memcpy of the same bytes, side by side.
// Usage: bench_serialization [parameters=25000000]
#include <flotilla/wire/messages.hpp>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "timing.hpp"

int main(int argc, char** argv) {
  const std::size_t size = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 25'000'000;  // 100 MB of floats
  flotilla::parameters<float> p(flotilla::tensor_layout({{"w", {size}}}));
  for (std::size_t i = 0; i < size; ++i) p.values()[i] = float(i % 1000);
  const double bytes = double(size) * sizeof(float);

  const double codec = bench::best_seconds(5, [&] {
    const auto encoded = flotilla::encode(p);
    const auto decoded = flotilla::decode<flotilla::parameters<float>>(encoded);
    volatile float sink = decoded.values()[size / 2];
    (void)sink;
  });
  // The baseline copies the bytes twice too (into a buffer and out of it), between warm buffers:
  // the codec's large buffers are recycled, so after the first repetition neither side faults.
  std::vector<std::byte> buffer(size * sizeof(float));
  std::vector<float> out(size);
  const double copy = bench::best_seconds(5, [&] {
    std::memcpy(buffer.data(), p.values().data(), buffer.size());
    std::memcpy(out.data(), buffer.data(), buffer.size());
    volatile float sink = out[size / 2];
    (void)sink;
  });
  bench::report("encode_decode_throughput", bytes / codec / 1e9, "GB/s", "memcpy_twice_GB/s", bytes / copy / 1e9);
}

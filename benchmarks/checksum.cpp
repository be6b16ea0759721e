// CRC32C as the TCP transport computes it (the fastest path this CPU has) against the SSE4.2
// three-stream path, side by side: over 100 MB from memory, and over the 1 MiB chunks a receive
// checks while they are in cache.
// Usage: bench_checksum [bytes=100000000]
#include <flotilla/transport/tcp/frame.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <vector>

#include "timing.hpp"

int main(int argc, char** argv) {
#ifdef FLOTILLA_HAVE_X86_CRC32C
  if (!__builtin_cpu_supports("sse4.2")) {
    std::puts("# this CPU has no SSE4.2: nothing to compare against");
    return 0;
  }
  const std::size_t size = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 100'000'000;
  std::vector<unsigned char> bytes(size);
  for (std::size_t i = 0; i < size; ++i) bytes[i] = static_cast<unsigned char>(i * 2654435761u >> 13);
  volatile std::uint32_t sink = 0;
  for (const std::size_t length : {size, std::min(size, std::size_t{1} << 20)}) {
    const int repetitions = length == size ? 5 : 200;
    const auto data = std::as_bytes(std::span(bytes.data(), length));
    const auto [used, streams] = bench::interleaved_best_seconds(
        repetitions, [&] { sink = sink ^ flotilla::detail::crc32c(data); },
        [&] { sink = sink ^ flotilla::detail::crc32c_sse42(~0u, bytes.data(), length); });
    std::printf("# %s\n", length == size ? "from memory" : "1 MiB, from cache");
    const double gb = double(length) / 1e9;
    bench::report("crc32c_throughput", gb / used, "GB/s", "sse42_three_streams_GB/s", gb / streams);
  }
#else
  (void)argc;
  (void)argv;
  std::puts("# not an x86-64 build: only the portable CRC32C exists");
#endif
}

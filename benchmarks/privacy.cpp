// Differential privacy's costs, side by side in one run:
//  - Gaussian noise on a 25M-parameter float32 mean, from the kernel's generator (os_random),
//    from OpenSSL's DRBG (openssl_random), and from the test-only seeded source (the sampler's
//    cost without cryptographic bits), each against the weighted FedAvg of 10 such updates:
//    ratio <= 1 means DP at most doubles the aggregation's time.
//  - the discrete Gaussian's rate (exact integer samples a second, one thread) beside the
//    ziggurat's on the same generator.
//  - clipping one update (its delta's norm, then scaling it) against plain two-thread loops
//    making the same passes over the same bytes: ratio >= 0.8 is the target.
// Usage: bench_privacy [parameters=25000000]
#include <flotilla/aggregators/mean.hpp>
#include <flotilla/algorithms/privacy/clipping.hpp>
#include <flotilla/algorithms/privacy/noise.hpp>
#include <flotilla/algorithms/privacy/openssl_random.hpp>
#include <flotilla/parameters.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "timing.hpp"

namespace {

using params = flotilla::parameters<float>;
namespace privacy = flotilla::privacy;

params filled(std::size_t size, std::size_t seed) {
  params p(flotilla::tensor_layout({{"w", {size}}}));
  auto values = p.values();
  for (std::size_t i = 0; i < size; ++i) values[i] = float((i + 7 * seed) % 97) * 0.01f - 0.3f;
  return p;
}

template <class Source>
double samples_per_second(Source source, bool discrete) {
  constexpr int count = 2'000'000;
  double sink = 0;
  const double seconds = bench::best_seconds(3, [&] {
    if (discrete) {
      privacy::discrete_gaussian<Source> draw(1000.0, source);
      for (int i = 0; i < count; ++i) sink += double(draw());
    } else {
      privacy::word_stream<Source> bits(source);
      for (int i = 0; i < count; ++i) sink += privacy::standard_normal(bits);
    }
  });
  if (sink == 0.123) std::puts("");  // keeps the samples from being optimized away
  return count / seconds;
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t size = argc > 1 ? std::stoul(argv[1]) : 25'000'000;
  const params global = filled(size, 0);
  std::vector<params> updates;
  std::vector<flotilla::weighted_update<params>> batch;
  updates.reserve(10);
  for (std::size_t u = 0; u < 10; ++u) updates.push_back(filled(size, u + 1));
  for (std::size_t u = 0; u < 10; ++u) batch.push_back({&updates[u], std::int64_t(u + 1)});

  flotilla::weighted_mean<params> fedavg;
  params mean = global;
  const auto aggregate = [&] {
    fedavg.start(global);
    fedavg.accept_batch(batch);
    mean = fedavg.result();
  };
  const auto noise_with = [&](const auto& source) {
    return [&mean, source] { privacy::add_gaussian_noise(mean.values(), 0.01, source, 1); };
  };
  std::printf("# Gaussian noise on %zu float32 values against the weighted FedAvg of 10 updates of that size\n", size);
  {
    const auto [noise, average] = bench::interleaved_best_seconds(5, noise_with(privacy::os_random{}), aggregate);
    bench::report("dp_noise_os_random_s", noise, "s", "fedavg_10_updates_s", average);
  }
  {
    const auto [noise, average] = bench::interleaved_best_seconds(5, noise_with(privacy::openssl_random{}), aggregate);
    bench::report("dp_noise_openssl_random_s", noise, "s", "fedavg_10_updates_s", average);
  }
  {
    const auto [noise, average] =
        bench::interleaved_best_seconds(5, noise_with(privacy::seeded_random_for_tests_only(1)), aggregate);
    bench::report("dp_noise_seeded_not_secure_s", noise, "s", "fedavg_10_updates_s", average);
  }

  std::printf("# samples a second on one thread: the exact discrete Gaussian (sigma 1000) against the ziggurat\n");
  for (const bool openssl : {false, true}) {
    const double discrete = openssl ? samples_per_second(privacy::openssl_random{}, true)
                                    : samples_per_second(privacy::os_random{}, true);
    const double continuous = openssl ? samples_per_second(privacy::openssl_random{}, false)
                                      : samples_per_second(privacy::os_random{}, false);
    bench::report(openssl ? "discrete_gaussian_openssl_per_s" : "discrete_gaussian_os_random_per_s", discrete, "1/s",
                  "ziggurat_same_source_per_s", continuous);
  }

  std::printf("# clipping one update of %zu float32 values (norm of its delta, then scaling): GB/s read and written\n",
              size);
  params clipped = global;
  const params& update = updates[0];
  const double bytes = 5.0 * double(size) * sizeof(float);  // norm: reads 2 arrays; scale: reads 2, writes 1
  double norm = 0;
  const auto clip = [&] {
    norm = privacy::delta_norm(update, global);
    privacy::scale_delta(update, global, privacy::clip_factor(norm, 1.0), clipped);
  };
  const auto plain = [&] {
    std::vector<double> halves(2);
    bench::on_two_threads(size, [&](std::size_t begin, std::size_t end) {
      const float* u = update.values().data();
      const float* g = global.values().data();
      double lanes[4] = {0, 0, 0, 0};
      for (std::size_t i = begin; i + 4 <= end; i += 4)
        for (std::size_t lane = 0; lane < 4; ++lane) {
          const double d = double(u[i + lane]) - double(g[i + lane]);
          lanes[lane] += d * d;
        }
      halves[begin == 0 ? 0 : 1] = lanes[0] + lanes[1] + lanes[2] + lanes[3];
    });
    const double factor = 1.0 / std::sqrt(halves[0] + halves[1]);
    bench::on_two_threads(size, [&](std::size_t begin, std::size_t end) {
      const float* u = update.values().data();
      const float* g = global.values().data();
      float* o = clipped.values().data();
      for (std::size_t i = begin; i < end; ++i) o[i] = float(double(g[i]) + factor * (double(u[i]) - double(g[i])));
    });
  };
  const auto [clip_seconds, plain_seconds] = bench::interleaved_best_seconds(7, clip, plain);
  bench::report("clip_update_gb_per_s", bytes / clip_seconds / 1e9, "GB/s", "plain_two_thread_loops_gb_per_s",
                bytes / plain_seconds / 1e9);
  if (!std::isfinite(norm)) return 1;
}

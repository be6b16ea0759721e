// What the framework costs per round when the learners do nothing: 100 in-memory learners with a
// 1,000-parameter model and a fit that returns at once, against the same work written as a plain
// loop in the same run (each learner copies the global parameters in and its own out, and the
// copies are averaged). Usage: bench_round_overhead [learners=100] [parameters=1000]
#include <flotilla/flotilla.hpp>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "timing.hpp"

namespace {
using params = flotilla::parameters<float>;

// A model whose fit does nothing: what is left of a round is the framework.
struct idle_model {
  params p;
  const params& parameters() const { return p; }
  void set_parameters(const params& q) { p = q; }
  flotilla::local_result fit(const int&, const flotilla::fit_config&) { return {1, {}}; }
};
}  // namespace

int main(int argc, char** argv) {
  const std::size_t count = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 100;
  const std::size_t size = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 1000;
  const params initial(flotilla::tensor_layout({{"w", {size}}}));

  std::vector<flotilla::learner<idle_model, int>> learners;
  for (std::size_t i = 0; i < count; ++i) learners.emplace_back(i, idle_model{initial}, 0);
  flotilla::in_memory_transport transport(std::move(learners));
  flotilla::coordinator federation(transport, initial, {.quorum = count});
  federation.run_round();  // warm-up

  // The baseline: the copies and the mean a round needs, with no framework around them.
  std::vector<params> models(count, initial);
  params global = initial, sum = initial;
  const auto [round, plain] = bench::interleaved_best_seconds(
      20,
      [&] {
        for (int r = 0; r < 10; ++r) federation.run_round();
      },
      [&] {
        for (int r = 0; r < 10; ++r) {
          flotilla::fill(sum, 0.0f);
          for (auto& m : models) {
            m = global;
            flotilla::axpy(sum, 1.0f, m);
          }
          flotilla::scale(sum, 1.0f / float(count));
          global = sum;
        }
      });
  const double per_round_ms = round / 10 * 1e3;
  std::printf("# %zu learners, %zu parameters: %.3f ms a round, %.2f us a learner (target: <= 2 ms a round)\n",
              count, size, per_round_ms, per_round_ms * 1e3 / double(count));
  bench::report("round_overhead", per_round_ms, "ms", "plain_loop_ms", plain / 10 * 1e3);
}

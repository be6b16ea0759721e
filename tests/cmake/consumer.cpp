// A program outside Flotilla's tree: its own parameter type and model, federated in process.
// Exits 0 when FedAvg of the learners' local means is the global mean.
#include <flotilla/flotilla.hpp>

#include <array>
#include <cstdio>
#include <numeric>
#include <span>
#include <vector>

struct scalar_parameters {
  using scalar_type = double;
  std::array<double, 1> value{};
  std::span<double> values() { return value; }
  std::span<const double> values() const { return value; }
  int layout() const { return 1; }
};

struct mean_model {
  scalar_parameters p;
  const scalar_parameters& parameters() const { return p; }
  void set_parameters(const scalar_parameters& q) { p = q; }
  flotilla::local_result fit(const std::vector<double>& data, const flotilla::fit_config&) {
    p.value[0] = std::accumulate(data.begin(), data.end(), 0.0) / double(data.size());
    return {static_cast<std::int64_t>(data.size()), {}};
  }
};

int main() {
  std::vector<flotilla::learner<mean_model, std::vector<double>>> learners;
  learners.emplace_back(1, mean_model{}, std::vector<double>{1, 2, 3});
  learners.emplace_back(2, mean_model{}, std::vector<double>{7});
  flotilla::in_memory_transport transport(std::move(learners));
  flotilla::coordinator federation(transport, scalar_parameters{}, {.quorum = 2});
  federation.run(flotilla::stop::after_rounds(1));
  std::printf("flotilla %s: global mean %.3f (expected 3.250)\n", flotilla::version, federation.global().value[0]);
  return federation.global().value[0] == 3.25 ? 0 : 1;
}

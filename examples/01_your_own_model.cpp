// Your own model, federated: a straight line y = slope * x + intercept, its own parameter type,
// its own data type. Three learners hold points from different stretches of the same line;
// none could fit it from its own points alone, together they recover slope 2 and intercept 1.
// Only what it uses: the coordinator, the learner and the in-memory transport. Neither Eigen nor
// cereal is parsed; they come in with Flotilla's own parameter type and wire format.
#include <flotilla/coordinators/synchronous.hpp>
#include <flotilla/round/learner.hpp>
#include <flotilla/transport/in_memory.hpp>

#include <array>
#include <cstdio>
#include <span>
#include <utility>
#include <vector>

// A ParameterSet: scalars in one contiguous block, a layout that can be compared.
struct line_parameters {
  using scalar_type = double;
  std::array<double, 2> data{};  // slope, intercept
  std::span<double> values() { return data; }
  std::span<const double> values() const { return data; }
  int layout() const { return 2; }  // one fixed shape
};

using points = std::vector<std::pair<double, double>>;  // (x, y)

// A Model trainable on `points`: plain gradient descent on the squared error.
struct line_model {
  line_parameters p;
  const line_parameters& parameters() const { return p; }
  void set_parameters(const line_parameters& q) { p = q; }

  flotilla::local_result fit(const points& data, const flotilla::fit_config& config) {
    const double rate = config.get("learning_rate", 0.05);
    for (int step = 0; step < 20; ++step) {
      double slope_gradient = 0, intercept_gradient = 0;
      for (auto [x, y] : data) {
        const double residual = p.data[0] * x + p.data[1] - y;
        slope_gradient += 2 * residual * x / double(data.size());
        intercept_gradient += 2 * residual / double(data.size());
      }
      p.data[0] -= rate * slope_gradient;
      p.data[1] -= rate * intercept_gradient;
    }
    return {.examples = static_cast<std::int64_t>(data.size()), .metrics = {}};
  }
};

int main() {
  std::vector<flotilla::learner<line_model, points>> learners;
  for (int id = 0; id < 3; ++id) {
    points local;
    for (int i = 0; i < 10; ++i) {
      const double x = id + 0.1 * i;  // learner 0 sees x in [0, 1), learner 1 [1, 2), learner 2 [2, 3)
      local.emplace_back(x, 2 * x + 1);
    }
    learners.emplace_back(id, line_model{}, std::move(local));
  }
  flotilla::in_memory_transport transport(std::move(learners));
  flotilla::coordinator federation(transport, line_parameters{}, {.quorum = 3});
  federation.run(flotilla::stop::after_rounds(200));
  std::printf("slope=%.4f intercept=%.4f (true: 2, 1)\n", federation.global().data[0], federation.global().data[1]);
}

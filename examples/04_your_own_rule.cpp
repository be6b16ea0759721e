// Writing an aggregation rule: `clipped_mean` bounds how far any one learner can pull the model
// (each update's distance from the global parameters is clipped to a maximum L2 norm, as in
// differentially private and robust FL), then takes the example-weighted mean. It models
// flotilla::Aggregator, streams (O(model) memory), and composes: here it is the inner stage of
// FedAvgM. One of the 8 learners sends garbage 1000 times too large; clipping contains it.
#include <flotilla/flotilla.hpp>
#include <flotilla/models.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <vector>

// ---- the rule, in 25 lines ----
template <flotilla::ParameterSet P>
class clipped_mean {
 public:
  explicit clipped_mean(double max_norm = 1.0) : max_norm_(max_norm) {}

  void start(const P& global) {
    global_ = global;
    inner_.start(global);
  }
  void accept(const P& update, std::int64_t examples) {
    P step = flotilla::difference(update, *global_);  // update - global
    const double norm = flotilla::l2_norm(step);
    if (norm > max_norm_) flotilla::scale(step, static_cast<typename P::scalar_type>(max_norm_ / norm));
    flotilla::axpy(step, typename P::scalar_type{1}, *global_);  // back to parameters
    inner_.accept(step, examples);
  }
  void merge(const clipped_mean& other) { inner_.merge(other.inner_); }
  [[nodiscard]] std::size_t accepted() const { return inner_.accepted(); }
  [[nodiscard]] P result() const { return inner_.result(); }

 private:
  double max_norm_;
  std::optional<P> global_;
  flotilla::weighted_mean<P> inner_;
};
// ---- end of the rule ----

using model = flotilla::linear_regression<double>;
static_assert(flotilla::Aggregator<clipped_mean<model::parameters_type>, model::parameters_type>);

// Trains the built-in linear model; a broken one then reports parameters 1000 times too large.
struct maybe_broken {
  model inner{3, {.learning_rate = 0.05, .epochs = 1, .batch_size = 20}};
  bool broken = false;
  model::parameters_type sent = inner.parameters();
  const model::parameters_type& parameters() const { return sent; }
  void set_parameters(const model::parameters_type& p) { inner.set_parameters(p); }
  flotilla::local_result fit(const model::data_type& data, const flotilla::fit_config& config) {
    auto result = inner.fit(data, config);
    sent = inner.parameters();
    if (broken) flotilla::scale(sent, 1000.0);
    return result;
  }
};

// Eight learners with samples of y = 1.5 x0 - 2 x1 + 0.5 x2 + 3; learner 0 is broken.
template <class Rule>
model::parameters_type federate(Rule rule) {
  flotilla::random_engine engine(7);
  std::vector<flotilla::learner<maybe_broken, model::data_type>> learners;
  for (flotilla::learner_id id = 0; id < 8; ++id) {
    model::data_type local{Eigen::MatrixXd(3, 200), Eigen::VectorXd(200)};
    for (Eigen::Index i = 0; i < 200; ++i) {
      for (Eigen::Index f = 0; f < 3; ++f) local.features(f, i) = flotilla::standard_normal(engine);
      local.targets(i) = 1.5 * local.features(0, i) - 2 * local.features(1, i) + 0.5 * local.features(2, i) + 3 +
                         0.1 * flotilla::standard_normal(engine);
    }
    learners.emplace_back(id, maybe_broken{.broken = id == 0}, std::move(local));
  }
  flotilla::in_memory_transport transport(std::move(learners));
  flotilla::coordinator federation(transport, model(3).parameters(), {.quorum = 8, .seed = 1}, std::move(rule));
  federation.run(flotilla::stop::after_rounds(60));
  return federation.global();
}

double error_of(const model::parameters_type& p) {
  const auto w = p.values();
  return std::hypot(w[0] - 1.5, w[1] + 2, w[2] - 0.5) + std::abs(w[3] - 3);
}

int main() {
  using params = model::parameters_type;
  // Server momentum over the clipping stage: the composition happens in the type.
  const auto clipped = federate(flotilla::fedavgm<params, clipped_mean<params>>({.learning_rate = 1.0, .momentum = 0.5},
                                                                                clipped_mean<params>(0.5)));
  const auto plain = federate(flotilla::weighted_mean<params>{});
  const auto w = clipped.values();
  std::printf("clipped FedAvgM: weight=(%.3f, %.3f, %.3f) bias=%.3f  error %.3f  (true: 1.5, -2, 0.5, 3)\n", w[0], w[1],
              w[2], w[3], error_of(clipped));
  std::printf("plain FedAvg:    error %.3g\n", error_of(plain));
  return error_of(clipped) < 0.3 && error_of(plain) > 10 ? 0 : 1;
}

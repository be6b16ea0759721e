#pragma once
// The learners of the MPI tests: linear regression on data made from the learner's id, with
// misbehaviour on demand.

#include <flotilla/models/linear_regression.hpp>
#include <flotilla/round/learner.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace mpi_test {

using flotilla::learner_id;
using model = flotilla::linear_regression<double>;
using data = model::data_type;
using params = flotilla::parameters<double>;

// Learner i's data: y = 1 + 2 x0 - x1 + (i % 10) / 10 on 10 + 3 (i % 7) points. Learners named in
// `throws` throw, those in `poisons` reply with a NaN, and those in `sleeps` take 3 s; with
// `exit_in_round`, every learner ends its process when asked to fit in that round (a rank dies).
struct behaviour {
  std::vector<learner_id> throws{}, poisons{}, sleeps{};
  std::uint64_t exit_in_round = 0;
  bool has(const std::vector<learner_id>& ids, learner_id id) const { return std::ranges::find(ids, id) != ids.end(); }
};

class test_learner {
 public:
  using parameters_type = params;
  test_learner(learner_id id, behaviour odd) : odd_(std::move(odd)), inner_(id, model(2, {.learning_rate = 0.1, .epochs = 2, .batch_size = 4}), make_data(id), make_data(id + 1000)) {}
  learner_id id() const { return inner_.id(); }
  flotilla::reply<params> handle(const flotilla::task<params>& work) {
    if (work.kind == flotilla::task_kind::fit) {
      if (work.round == odd_.exit_in_round) std::_Exit(3);
      if (odd_.has(odd_.throws, id())) throw std::runtime_error("learner " + std::to_string(id()) + " broke");
      if (odd_.has(odd_.sleeps, id())) std::this_thread::sleep_for(std::chrono::seconds(3));
    }
    auto answer = inner_.handle(work);
    if (work.kind == flotilla::task_kind::fit && odd_.has(odd_.poisons, id()))
      answer.parameters->values()[1] = std::numeric_limits<double>::quiet_NaN();
    return answer;
  }

 private:
  static data make_data(learner_id i) {
    const Eigen::Index n = 10 + 3 * Eigen::Index(i % 7);
    data local{Eigen::MatrixXd(2, n), Eigen::VectorXd(n)};
    for (Eigen::Index k = 0; k < n; ++k) {
      local.features(0, k) = std::sin(double(k + 7 * i));
      local.features(1, k) = std::cos(double(3 * k + i));
      local.targets(k) = 1 + 2 * local.features(0, k) - local.features(1, k) + double(i % 10) / 10;
    }
    return local;
  }
  behaviour odd_;
  flotilla::learner<model, data> inner_;
};

}  // namespace mpi_test

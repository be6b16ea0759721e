#pragma once
// The learner: holds a model and its own data, trains only on that data, and answers tasks.

#include <optional>
#include <string>
#include <utility>

#include "flotilla/concepts/learner.hpp"
#include "flotilla/concepts/model.hpp"
#include "flotilla/errors.hpp"
#include "flotilla/messages.hpp"
#include "flotilla/random.hpp"

namespace flotilla {

/// @brief A model plus its local training data and, optionally, local evaluation data.
///
/// `handle` loads the task's parameters into the model and then trains (fit) or evaluates on the
/// local data. It throws when it cannot do the task; the transport turns that into a failure of
/// this learner alone.
///
/// `M` must be `TrainableOn<Data>`; checked in the body so an error names the unmet requirement.
template <class M, class Data>
class learner {
  static_assert(detail::explain_trainable_on<M, Data>());

 public:
  using model_type = M;
  using data_type = Data;
  using parameters_type = parameters_of_t<M>;

  learner(learner_id id, M model, Data training)
      : id_(id), model_(std::move(model)), training_(std::move(training)) {}
  learner(learner_id id, M model, Data training, Data evaluation)
      : id_(id), model_(std::move(model)), training_(std::move(training)), evaluation_(std::move(evaluation)) {}

  [[nodiscard]] learner_id id() const { return id_; }
  [[nodiscard]] const M& model() const { return model_; }

  /// What this learner reports when it joins (e.g. "examples", "device", "version"): selection
  /// can filter and weight by it, and configure_fit receives it.
  [[nodiscard]] const settings& properties() const { return properties_; }
  void set_properties(settings properties) { properties_ = std::move(properties); }

  [[nodiscard]] reply<parameters_type> handle(const task<parameters_type>& work);

 private:
  learner_id id_;
  M model_;
  Data training_;
  std::optional<Data> evaluation_;
  settings properties_;
};

// Out of the class, so not inline: with FLOTILLA_SEPARATE_COMPILATION the common learners are
// compiled once in the library.
template <class M, class Data>
auto learner<M, Data>::handle(const task<parameters_type>& work) -> reply<parameters_type> {
  if (!work.parameters) throw task_error("task for round " + std::to_string(work.round) + " carries no parameters");
  model_.set_parameters(*work.parameters);
  reply<parameters_type> answer{.learner = id_, .kind = work.kind, .round = work.round, .result = {}, .parameters = {}};
  if (work.kind == task_kind::fit) {
    fit_config config = work.config;
    config.seed = mix_seed(config.seed, id_);  // each learner shuffles differently, reproducibly
    answer.result = model_.fit(training_, config);
    answer.parameters = parameters_type(model_.parameters());
    return answer;
  }
  if (work.kind != task_kind::evaluate)
    throw task_error("learner " + std::to_string(id_) + " does not handle " + to_string(work.kind) +
                     " tasks; a round with stages of its own needs a learner that does");
  if constexpr (EvaluableOn<M, Data>) {
    if (!evaluation_) throw task_error("learner " + std::to_string(id_) + " has no evaluation data");
    answer.result = model_.evaluate(*evaluation_);
    return answer;
  } else {
    throw task_error("the model of learner " + std::to_string(id_) + " cannot evaluate");
  }
}

/// @brief `L`, replying to fit tasks with its update (its trained parameters less the task's)
/// instead of its parameters: for a buffered coordinator with `learners_send_deltas`, which then
/// keeps no older version of the model to subtract. Other tasks pass through.
template <Learner L>
class delta_learner {
 public:
  using parameters_type = typename L::parameters_type;

  explicit delta_learner(L inner) : inner_(std::move(inner)) {}
  [[nodiscard]] learner_id id() const { return inner_.id(); }
  [[nodiscard]] const L& inner() const { return inner_; }

  reply<parameters_type> handle(const task<parameters_type>& work) {
    auto answer = inner_.handle(work);
    if (work.kind != task_kind::fit || !answer.parameters || !work.parameters) return answer;
    auto trained = answer.parameters->values();
    const auto base = work.parameters->values();
    if (trained.size() != base.size()) return answer;  // the door names the layout it should have had
    for (std::size_t i = 0; i < trained.size(); ++i) trained[i] -= base[i];
    return answer;
  }

 private:
  L inner_;
};

}  // namespace flotilla

#pragma once
// SCAFFOLD's parameter type: the model's tensors followed by the same tensors named
// "control/<name>", in one buffer. Its type fixes what each message holds: a task carries the
// global (x, c), a reply the deltas (y - x, c_i+ - c_i), so the server rule, which reads deltas,
// and the learner side, which sends them, agree through the type system.

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <span>
#include <utility>

#include "flotilla/errors.hpp"
#include "flotilla/parameters.hpp"

namespace flotilla {

/// A model's parameters followed by a control variate of the same layout, in one buffer.
template <std::floating_point Scalar>
class scaffold_parameters : public parameters<Scalar> {
 public:
  /// The model part equal to `model`, the control part zero.
  explicit scaffold_parameters(const parameters<Scalar>& model)
      : parameters<Scalar>(doubled(model.layout())) {
    std::ranges::copy(model.values(), this->values().begin());
  }
  /// Adopts a buffer whose layout is a model's followed by its "control/" copy.
  /// @throws layout_error otherwise.
  static scaffold_parameters adopt(parameters<Scalar> whole) {
    const auto& tensors = whole.layout().tensors();
    const auto half = tensors.size() / 2;
    bool paired = tensors.size() % 2 == 0;
    for (std::size_t i = 0; paired && i < half; ++i)
      paired = tensors[half + i].name == "control/" + tensors[i].name && tensors[half + i].shape == tensors[i].shape;
    if (!paired) throw layout_error("parameters are not a model followed by its control variate");
    return scaffold_parameters(adopted{}, std::move(whole));
  }

  [[nodiscard]] std::span<Scalar> model_values() { return this->values().first(this->size() / 2); }
  [[nodiscard]] std::span<const Scalar> model_values() const { return this->values().first(this->size() / 2); }
  [[nodiscard]] std::span<Scalar> control_values() { return this->values().subspan(this->size() / 2); }
  [[nodiscard]] std::span<const Scalar> control_values() const { return this->values().subspan(this->size() / 2); }

 private:
  struct adopted {};
  scaffold_parameters(adopted, parameters<Scalar> whole) : parameters<Scalar>(std::move(whole)) {}

  static tensor_layout doubled(const tensor_layout& model) {
    auto tensors = model.tensors();
    for (const auto& tensor : model.tensors()) tensors.push_back({"control/" + tensor.name, tensor.shape});
    return tensor_layout(std::move(tensors));
  }
};

}  // namespace flotilla

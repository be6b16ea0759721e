#pragma once
// A LibTorch module as a Flotilla model (target and package component flotilla::torch; the core
// never includes LibTorch).
//
// The module's float32 parameters, and its float32 buffers when they are federated, live in one
// contiguous flotilla::parameters<float>: each of the module's tensors becomes a view into it (as
// PyTorch's FSDP does with its FlatParameter), so parameters() hands out the buffer itself and
// set_parameters() is one copy into it, never a gather or a scatter. The layout names each tensor
// as the module does ("conv1.weight", "bn.running_mean") with its shape.

#include <torch/torch.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "flotilla/algorithms/scaffold/step_correction.hpp"
#include "flotilla/errors.hpp"
#include "flotilla/fwd.hpp"
#include "flotilla/models/sgd.hpp"
#include "flotilla/parameters.hpp"

namespace flotilla {

/// Whether a module's buffers (BatchNorm's running mean and variance) travel with its
/// parameters. `local` keeps them on each learner, as FedBN does (Li et al. 2021); integer
/// buffers (BatchNorm's batch count) always stay local.
enum class torch_buffers : std::uint8_t { federated, local };

/// Tensors to train or evaluate on: `inputs` [N, ...] and `targets` [N] (int64 class indices,
/// for classification) or [N, ...] (for regression), both on the CPU.
struct torch_data {
  torch::Tensor inputs{};
  torch::Tensor targets{};
  [[nodiscard]] std::size_t size() const { return inputs.defined() ? std::size_t(inputs.size(0)) : 0; }
  /// The examples at `indices`, in that order.
  [[nodiscard]] torch_data subset(std::span<const std::size_t> indices) const {
    std::vector<std::int64_t> at(indices.begin(), indices.end());
    const auto index = torch::tensor(at, torch::kInt64);
    return {inputs.index_select(0, index), targets.index_select(0, index)};
  }
};

/// A LibTorch dataset (torch::data::datasets, or your own with size() and get(i) returning a
/// torch::data::Example) as torch_data: every example stacked, inputs and targets.
/// @throws configuration_error for a dataset whose size is unknown or zero.
template <class Dataset>
[[nodiscard]] torch_data to_torch_data(Dataset& dataset) {
  const auto size = dataset.size();
  if (!size || *size == 0) throw configuration_error("to_torch_data: the dataset has no known size or no examples");
  std::vector<torch::Tensor> inputs, targets;
  inputs.reserve(*size);
  targets.reserve(*size);
  for (std::size_t i = 0; i < *size; ++i) {
    auto example = dataset.get(i);
    inputs.push_back(std::move(example.data));
    targets.push_back(std::move(example.target));
  }
  return {torch::stack(inputs), torch::stack(targets)};
}

/// Makes an optimizer over a module's parameters for one fit, given its learning rate.
using torch_optimizer_factory =
    std::function<std::unique_ptr<torch::optim::Optimizer>(std::vector<torch::Tensor> parameters, double learning_rate)>;

/// SGD, with momentum when given. A fit starts it afresh, as federated optimizers do.
inline torch_optimizer_factory torch_sgd(double momentum = 0) {
  return [momentum](std::vector<torch::Tensor> parameters, double learning_rate) -> std::unique_ptr<torch::optim::Optimizer> {
    return std::make_unique<torch::optim::SGD>(std::move(parameters), torch::optim::SGDOptions(learning_rate).momentum(momentum));
  };
}

/// Adam with LibTorch's defaults but the learning rate.
inline torch_optimizer_factory torch_adam() {
  return [](std::vector<torch::Tensor> parameters, double learning_rate) -> std::unique_ptr<torch::optim::Optimizer> {
    return std::make_unique<torch::optim::Adam>(std::move(parameters), torch::optim::AdamOptions(learning_rate));
  };
}

/// The loss of a batch's outputs against its targets, a scalar tensor.
using torch_loss = std::function<torch::Tensor(const torch::Tensor& output, const torch::Tensor& target)>;

/// Cross-entropy of logits [N, C] against class indices [N].
inline torch::Tensor torch_cross_entropy(const torch::Tensor& output, const torch::Tensor& target) {
  return torch::nn::functional::cross_entropy(output, target);
}

/// Mean squared error.
inline torch::Tensor torch_mse(const torch::Tensor& output, const torch::Tensor& target) {
  return torch::mse_loss(output, target);
}

/// How a torch_model trains when the fit settings say nothing.
struct torch_options {
  /// learning_rate, epochs, batch_size, proximal_mu; the fit settings of the same names win.
  sgd_options sgd{};
  torch_buffers buffers = torch_buffers::federated;
  /// LibTorch's intra-op threads while fitting and evaluating; 0 leaves its setting alone.
  /// (LibTorch's thread count is one setting for the whole process.)
  int threads = 0;
  /// Examples per forward pass when evaluating.
  std::size_t evaluation_batch = 1024;
};

/// What a torch_model federates: its tensors' values in one buffer, each named as the module names it.
using torch_parameters = parameters<float>;

/// @brief A LibTorch module `Module` (a module holder such as torch::nn::Sequential, or your
/// own TORCH_MODULE) as a Flotilla model: TrainableOn and EvaluableOn torch_data.
///
/// A fit draws its minibatches from the task's seed; with no randomness in the module's forward
/// pass (no dropout) and a fixed thread count, it is reproducible. Dropout draws from LibTorch's
/// one process-wide generator, which learners training at once share. Each fit starts the
/// optimizer afresh. SCAFFOLD's step correction is applied after each step as an SGD step would
/// (exact for torch_sgd() without momentum); proximal_mu adds FedProx's mu (w - w_global) to each
/// gradient. A copy of a torch_model clones its module.
template <class Module>
class torch_model : public step_correction<torch_model<Module>, torch_parameters> {
 public:
  using parameters_type = torch_parameters;
  using data_type = torch_data;

  /// @throws configuration_error naming a tensor that is not float32 on the CPU.
  explicit torch_model(Module module, torch_options options = {}, torch_optimizer_factory optimizer = torch_sgd(),
                       torch_loss loss = torch_cross_entropy)
      : module_(std::move(module)), options_(options), optimizer_(std::move(optimizer)), loss_(std::move(loss)) {
    flatten();
  }

  torch_model(const torch_model& other)
      : step_correction<torch_model<Module>, torch_parameters>(other),
        module_(std::dynamic_pointer_cast<typename Module::ContainedType>(other.module_->clone())),
        options_(other.options_),
        optimizer_(other.optimizer_),
        loss_(other.loss_) {
    flatten();
  }
  torch_model& operator=(const torch_model& other) {
    if (this != &other) *this = torch_model(other);
    return *this;
  }
  // Moving keeps the flat buffer where it is, so the module's views stay valid.
  torch_model(torch_model&&) noexcept = default;
  torch_model& operator=(torch_model&&) noexcept = default;
  ~torch_model() = default;

  /// The module's federated tensors, the flat buffer itself (no copy).
  [[nodiscard]] const parameters_type& parameters() const { return *flat_; }

  /// One copy into the flat buffer, which the module's tensors view.
  /// @throws layout_error, changing nothing, naming the first tensor that differs.
  void set_parameters(const parameters_type& params) {
    const auto& theirs = params.layout().tensors();
    const auto& ours = flat_->layout().tensors();
    for (std::size_t i = 0; i < std::max(theirs.size(), ours.size()); ++i) {
      if (i < theirs.size() && i < ours.size() && theirs[i].name == ours[i].name && theirs[i].shape == ours[i].shape) continue;
      throw layout_error("the parameters do not fit the torch module: their tensor " + std::to_string(i) + " is " +
                         (i < theirs.size() ? describe(theirs[i]) : "missing") + "; the module's is " +
                         (i < ours.size() ? describe(ours[i]) : "missing"));
    }
    std::copy(params.values().begin(), params.values().end(), flat_->values().begin());
  }

  [[nodiscard]] Module& module() { return module_; }
  [[nodiscard]] const Module& module() const { return module_; }

  local_result fit(const torch_data& data, const fit_config& config) {
    check(data);
    const auto options = options_.sgd.with(config);
    if (options_.threads > 0) torch::set_num_threads(options_.threads);
    module_->train();
    auto optimizer = optimizer_(module_->parameters(), options.learning_rate);
    std::optional<parameters_type> start;  // w_global, for FedProx
    if (options.proximal_mu > 0) start.emplace(*flat_);
    double loss_sum = 0;
    std::size_t seen = 0, steps = 0;
    detail::for_each_minibatch(data.size(), options, config.seed, [&](std::span<const std::size_t> batch) {
      const auto part = data.subset(batch);
      optimizer->zero_grad();
      const auto loss = loss_(module_->forward(part.inputs), part.targets);
      loss.backward();
      if (start) add_proximal_gradient(*start, options.proximal_mu);
      optimizer->step();
      this->apply_step_correction(*flat_, options.learning_rate);
      loss_sum += loss.template item<double>() * double(batch.size());
      seen += batch.size();
      ++steps;
    });
    this->record_fit({steps, options.learning_rate});
    local_result result{static_cast<std::int64_t>(data.size()), {}};
    if (seen > 0) result.metrics["loss"] = loss_sum / double(seen);
    return result;
  }

  /// Loss and, for class-index targets, accuracy; the module is put back in training mode.
  [[nodiscard]] local_result evaluate(const torch_data& data) const {
    check(data);
    if (options_.threads > 0) torch::set_num_threads(options_.threads);
    torch::NoGradGuard no_gradients;
    module_->eval();
    double loss_sum = 0, correct = 0;
    const bool classes = data.targets.scalar_type() == torch::kInt64;
    for (std::int64_t begin = 0; begin < std::int64_t(data.size()); begin += std::int64_t(options_.evaluation_batch)) {
      const auto end = std::min<std::int64_t>(std::int64_t(data.size()), begin + std::int64_t(options_.evaluation_batch));
      const auto output = module_->forward(data.inputs.slice(0, begin, end));
      const auto target = data.targets.slice(0, begin, end);
      loss_sum += loss_(output, target).template item<double>() * double(end - begin);
      if (classes) correct += output.argmax(1).eq(target).sum().template item<double>();
    }
    module_->train();
    local_result result{static_cast<std::int64_t>(data.size()), {}};
    if (data.size() == 0) return result;
    result.metrics["loss"] = loss_sum / double(data.size());
    if (classes) result.metrics["accuracy"] = correct / double(data.size());
    return result;
  }

 private:
  // One federated tensor: where it sits in the flat buffer.
  struct slot {
    torch::Tensor tensor;
    std::size_t offset;
  };

  // Gives every federated tensor a place in one flat buffer and makes it a view of that place.
  void flatten() {
    std::vector<std::pair<std::string, torch::Tensor>> federated;
    for (const auto& item : module_->named_parameters()) federated.emplace_back(item.key(), item.value());
    if (options_.buffers == torch_buffers::federated)
      for (const auto& item : module_->named_buffers())
        if (item.value().is_floating_point()) federated.emplace_back(item.key(), item.value());
    std::vector<tensor_spec> specs;
    for (const auto& [name, tensor] : federated) {
      if (tensor.scalar_type() != torch::kFloat32 || !tensor.device().is_cpu())
        throw configuration_error("torch_model federates float32 tensors on the CPU; '" + name + "' is " +
                                  std::string(c10::toString(tensor.scalar_type())) + " on " + tensor.device().str());
      std::vector<std::size_t> shape(tensor.sizes().begin(), tensor.sizes().end());
      specs.push_back({name, std::move(shape)});
    }
    // On the heap, so moving the model moves no values and the views stay valid.
    flat_ = std::make_unique<parameters_type>(tensor_layout(std::move(specs)));
    slots_.clear();
    std::size_t offset = 0;
    for (auto& [name, tensor] : federated) {
      const auto count = std::size_t(tensor.numel());
      auto view = torch::from_blob(flat_->values().data() + offset, tensor.sizes(), torch::kFloat32);
      {
        torch::NoGradGuard no_gradients;
        view.copy_(tensor);
      }
      tensor.set_data(view);
      slots_.push_back({tensor, offset});
      offset += count;
    }
  }

  // FedProx: the gradient of (mu / 2) ||w - w_start||^2, added to each parameter's.
  void add_proximal_gradient(const parameters_type& start, double mu) {
    torch::NoGradGuard no_gradients;
    for (auto& entry : slots_) {
      auto& gradient = entry.tensor.mutable_grad();
      if (!gradient.defined()) continue;  // a buffer, or a parameter this batch did not reach
      const auto anchor = torch::from_blob(const_cast<float*>(start.values().data()) + entry.offset, entry.tensor.sizes(),
                                           torch::kFloat32);
      gradient.add_(entry.tensor - anchor, mu);
    }
  }

  static std::string describe(const tensor_spec& tensor) {
    std::string text = "'" + tensor.name + "' [";
    for (std::size_t d = 0; d < tensor.shape.size(); ++d) text += (d ? ", " : "") + std::to_string(tensor.shape[d]);
    return text + "]";
  }

  static void check(const torch_data& data) {
    if (data.size() != 0 && (!data.targets.defined() || data.targets.size(0) != data.inputs.size(0)))
      throw configuration_error("torch_data holds " + std::to_string(data.size()) + " inputs and " +
                                (data.targets.defined() ? std::to_string(data.targets.size(0)) : std::string("no")) +
                                " targets");
  }

  mutable Module module_;  // evaluation runs the module's forward pass, which LibTorch does not mark const
  torch_options options_;
  torch_optimizer_factory optimizer_;
  torch_loss loss_;
  std::unique_ptr<parameters_type> flat_;
  std::vector<slot> slots_;
};

}  // namespace flotilla

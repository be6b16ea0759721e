#pragma once
// The default ParameterSet: one cache-aligned buffer of scalars and a layout of named tensors,
// each viewable as an Eigen map into the buffer without copying.

#include <Eigen/Core>  // Eigen::Map views of tensors

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <functional>  // std::multiplies
#include <memory>
#include <numeric>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "flotilla/detail/config.hpp"
#include "flotilla/concepts/parameter_set.hpp"
#include "flotilla/detail/aligned_allocator.hpp"
#include "flotilla/detail/text.hpp"
#include "flotilla/errors.hpp"

namespace flotilla {

/// One named tensor: its name and its shape (outermost dimension first).
struct tensor_spec {
  std::string name{};
  std::vector<std::size_t> shape{};

  /// Number of scalars (1 for an empty shape, a scalar tensor).
  [[nodiscard]] std::size_t size() const {
    return std::accumulate(shape.begin(), shape.end(), std::size_t{1}, std::multiplies<>{});
  }
  friend bool operator==(const tensor_spec&, const tensor_spec&) = default;
};

/// The arrangement of a parameter buffer: tensors laid end to end in the order given.
class tensor_layout {
 public:
  tensor_layout() = default;

  /// @throws layout_error if a name is empty or repeated.
  explicit tensor_layout(std::vector<tensor_spec> tensors) : tensors_(std::move(tensors)) {
    offsets_.reserve(tensors_.size());
    for (const auto& tensor : tensors_) {
      if (tensor.name.empty()) throw layout_error("a tensor in a parameter layout has no name");
      if (std::count_if(tensors_.begin(), tensors_.end(),
                        [&](const tensor_spec& t) { return t.name == tensor.name; }) > 1)
        throw layout_error("tensor name '" + tensor.name + "' appears twice in a parameter layout");
      offsets_.push_back(size_);
      size_ += tensor.size();
    }
  }

  [[nodiscard]] const std::vector<tensor_spec>& tensors() const { return tensors_; }
  /// Total number of scalars.
  [[nodiscard]] std::size_t size() const { return size_; }
  /// Index of the first scalar of tensor `index` in the flat buffer.
  [[nodiscard]] std::size_t offset(std::size_t index) const { return offsets_.at(index); }

  /// @throws layout_error naming the missing tensor.
  [[nodiscard]] std::size_t index_of(std::string_view name) const {
    for (std::size_t i = 0; i < tensors_.size(); ++i)
      if (tensors_[i].name == name) return i;
    throw layout_error("no tensor named '" + std::string(name) + "' in this parameter layout");
  }

  friend bool operator==(const tensor_layout& a, const tensor_layout& b) {
    return &a == &b || a.tensors_ == b.tensors_;  // copies of parameters share one layout
  }

 private:
  std::vector<tensor_spec> tensors_;
  std::vector<std::size_t> offsets_;
  std::size_t size_ = 0;
};

/// Large parameter and wire buffers freed by this process are kept for reuse: at most `blocks`
/// blocks of 32 MiB or more, `bytes` in all (defaults: 8 blocks, 2 GiB). A process that hosts
/// many large models at once (a simulation, a benchmark) may raise it; 0 turns the cache off.
inline void set_large_buffer_cache(std::size_t blocks, std::size_t bytes) {
#ifdef FLOTILLA_HAVE_MMAP
  detail::large_block_cache::instance().limit(blocks, bytes);
#else
  (void)blocks;
  (void)bytes;
#endif
}

/// @brief The default `ParameterSet`: a layout shared between copies and one aligned buffer.
///
/// Tensors are Eigen maps into the buffer: a tensor of shape {rows, cols...} is a column-major
/// `rows x (product of the rest)` matrix, a one-dimensional tensor a column vector.
template <std::floating_point Scalar>
class parameters {
 public:
  using scalar_type = Scalar;
  using matrix_map = Eigen::Map<Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>>;
  using const_matrix_map = Eigen::Map<const Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>>;
  using vector_map = Eigen::Map<Eigen::Matrix<Scalar, Eigen::Dynamic, 1>>;
  using const_vector_map = Eigen::Map<const Eigen::Matrix<Scalar, Eigen::Dynamic, 1>>;

  /// An empty parameter set (no tensors).
  parameters() : layout_(empty_layout()) {}

  /// All-zero parameters with the given layout.
  explicit parameters(tensor_layout layout)
      : parameters(std::make_shared<const tensor_layout>(std::move(layout))) {}

  /// All-zero parameters sharing an existing layout (no copy of the names).
  explicit parameters(std::shared_ptr<const tensor_layout> layout) : parameters(std::move(layout), for_overwrite) {
    std::ranges::fill(values_, Scalar{0});
  }

  /// Parameters whose values are indeterminate until written (see for_overwrite_t).
  parameters(std::shared_ptr<const tensor_layout> layout, for_overwrite_t)
      : layout_(layout ? std::move(layout) : empty_layout()), values_(layout_->size()) {}

  [[nodiscard]] const tensor_layout& layout() const { return *layout_; }
  [[nodiscard]] const std::shared_ptr<const tensor_layout>& shared_layout() const { return layout_; }

  [[nodiscard]] std::span<Scalar> values() { return values_; }
  [[nodiscard]] std::span<const Scalar> values() const { return values_; }
  [[nodiscard]] std::size_t size() const { return values_.size(); }

  /// The scalars of one tensor, in the flat buffer's order.
  [[nodiscard]] std::span<Scalar> values(std::string_view tensor) { return slice(index_of(tensor)); }
  [[nodiscard]] std::span<const Scalar> values(std::string_view tensor) const {
    return slice(index_of(tensor));
  }

  /// A tensor as an Eigen matrix map (column-major, rows = first dimension).
  [[nodiscard]] matrix_map matrix(std::string_view tensor) { return matrix(index_of(tensor)); }
  [[nodiscard]] const_matrix_map matrix(std::string_view tensor) const { return matrix(index_of(tensor)); }

  /// The same views by tensor index (the layout's order), for hot loops that skip the name lookup.
  [[nodiscard]] matrix_map matrix(std::size_t tensor) {
    auto [rows, cols] = matrix_shape(tensor);
    return matrix_map(slice(tensor).data(), rows, cols);
  }
  [[nodiscard]] const_matrix_map matrix(std::size_t tensor) const {
    auto [rows, cols] = matrix_shape(tensor);
    return const_matrix_map(slice(tensor).data(), rows, cols);
  }
  [[nodiscard]] vector_map vector(std::size_t tensor) {
    auto scalars = slice(tensor);
    return vector_map(scalars.data(), static_cast<Eigen::Index>(scalars.size()));
  }
  [[nodiscard]] const_vector_map vector(std::size_t tensor) const {
    auto scalars = slice(tensor);
    return const_vector_map(scalars.data(), static_cast<Eigen::Index>(scalars.size()));
  }

  /// A tensor as a flat Eigen vector map, whatever its shape.
  [[nodiscard]] vector_map vector(std::string_view tensor) { return vector(index_of(tensor)); }
  [[nodiscard]] const_vector_map vector(std::string_view tensor) const { return vector(index_of(tensor)); }

  /// Equal layouts and equal values.
  friend bool operator==(const parameters& a, const parameters& b) {
    return a.layout() == b.layout() && std::ranges::equal(a.values_, b.values_);
  }

 private:
  static const std::shared_ptr<const tensor_layout>& empty_layout() {
    static const auto empty = std::make_shared<const tensor_layout>();
    return empty;
  }
  [[nodiscard]] std::size_t index_of(std::string_view tensor) const { return layout_->index_of(tensor); }
  [[nodiscard]] std::span<Scalar> slice(std::size_t index) {
    return std::span<Scalar>(values_).subspan(layout_->offset(index), layout_->tensors()[index].size());
  }
  [[nodiscard]] std::span<const Scalar> slice(std::size_t index) const {
    return std::span<const Scalar>(values_).subspan(layout_->offset(index),
                                                     layout_->tensors()[index].size());
  }
  [[nodiscard]] std::pair<Eigen::Index, Eigen::Index> matrix_shape(std::size_t index) const {
    const auto& spec = layout_->tensors()[index];
    if (spec.shape.empty()) return {1, 1};
    return {static_cast<Eigen::Index>(spec.shape.front()),
            static_cast<Eigen::Index>(spec.size() / std::max<std::size_t>(spec.shape.front(), 1))};
  }

  std::shared_ptr<const tensor_layout> layout_;
  std::vector<Scalar, detail::uninitialized_allocator<Scalar>> values_;
};

static_assert(ParameterSet<parameters<float>>);
static_assert(ParameterSet<parameters<double>>);

#ifdef FLOTILLA_EXTERN_TEMPLATES  // compiled once in flotilla::compiled
extern template class parameters<float>;
extern template class parameters<double>;
#endif

}  // namespace flotilla

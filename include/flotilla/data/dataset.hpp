#pragma once
// Local datasets for the reference models: features with one column per example (so a
// minibatch is a set of contiguous columns) and labels or targets.

#include <Eigen/Core>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "flotilla/errors.hpp"

namespace flotilla {

/// Examples with class labels in [0, classes).
template <class Scalar>
struct classification_data {
  Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic> features{};  ///< features x examples
  std::vector<std::int32_t> labels{};                                ///< one per example
  std::int32_t classes = 0;

  [[nodiscard]] std::size_t size() const { return labels.size(); }

  /// The examples at `indices`, in that order.
  [[nodiscard]] classification_data subset(std::span<const std::size_t> indices) const {
    classification_data out{.features = decltype(features)(features.rows(), static_cast<Eigen::Index>(indices.size())),
                            .labels = {},
                            .classes = classes};
    out.labels.reserve(indices.size());
    for (std::size_t i = 0; i < indices.size(); ++i) {
      if (indices[i] >= labels.size())  // checked before the copy below
        throw data_error("example index " + std::to_string(indices[i]) + " out of range");
      out.labels.push_back(labels[indices[i]]);
      out.features.col(static_cast<Eigen::Index>(i)) = features.col(static_cast<Eigen::Index>(indices[i]));
    }
    return out;
  }
};

/// Examples with real-valued targets.
template <class Scalar>
struct regression_data {
  Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic> features{};  ///< features x examples
  Eigen::Matrix<Scalar, Eigen::Dynamic, 1> targets{};                ///< one per example

  [[nodiscard]] std::size_t size() const { return static_cast<std::size_t>(targets.size()); }

  [[nodiscard]] regression_data subset(std::span<const std::size_t> indices) const {
    regression_data out{decltype(features)(features.rows(), static_cast<Eigen::Index>(indices.size())),
                        decltype(targets)(static_cast<Eigen::Index>(indices.size()))};
    for (std::size_t i = 0; i < indices.size(); ++i) {
      const auto source = static_cast<Eigen::Index>(indices[i]);
      if (source >= targets.size()) throw data_error("example index " + std::to_string(indices[i]) + " out of range");
      out.features.col(static_cast<Eigen::Index>(i)) = features.col(source);
      out.targets(static_cast<Eigen::Index>(i)) = targets(source);
    }
    return out;
  }
};

}  // namespace flotilla

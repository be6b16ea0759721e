#pragma once
// The reference models, opt-in and outside the core umbrella: linear regression, and the MLP
// with softmax regression as its one-layer case. They need Eigen.

#include "flotilla/models/linear_regression.hpp"
#include "flotilla/models/mlp.hpp"
#include "flotilla/models/sgd.hpp"

#pragma once
// Datasets for the reference models, opt-in and outside the core umbrella: in-memory datasets,
// the Fashion-MNIST reader (target flotilla::data, which links zlib) and the IID and non-IID
// partitions FL research uses.

#include "flotilla/data/dataset.hpp"
#include "flotilla/data/fashion_mnist.hpp"
#include "flotilla/data/partition.hpp"

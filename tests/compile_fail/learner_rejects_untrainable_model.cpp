// Must not compile: a model without fit() cannot be a learner's model. Expected diagnostic (CTest
// checks it): the TrainableOn requirement, fit() missing.
#include "../archetypes/archetypes.hpp"

#include <flotilla/round/learner.hpp>

int main() {
  flotilla::learner<archetypes::model, archetypes::dataset> learner(1, {}, {});
  (void)learner;
}

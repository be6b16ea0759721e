// The program the federate_mlp subjects compile: two MLP learners, one round, the result encoded.
#pragma once

#include <vector>

int main() {
  using model = flotilla::mlp<float>;
  std::vector<flotilla::learner<model, model::data_type>> learners;
  for (std::size_t i = 0; i < 2; ++i) learners.emplace_back(i, model({4, 8, 3}), model::data_type{});
  flotilla::in_memory_transport transport(std::move(learners));
  flotilla::coordinator federation(transport, model({4, 8, 3}).parameters());
  federation.run_round();
  const auto bytes = flotilla::encode(federation.global());
  return bytes.empty() ? 1 : 0;
}

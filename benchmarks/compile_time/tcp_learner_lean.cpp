// Compile-time subject: the same learner as tcp_learner.cpp, including only the headers it uses
// (the learner, the MLP and the learner client) instead of the umbrella.
#include <flotilla/round/learner.hpp>
#include <flotilla/models/mlp.hpp>
#include <flotilla/transport/tcp/learner_client.hpp>

int main() {
  using model = flotilla::mlp<float>;
  flotilla::learner<model, model::data_type> learner(0, model({4, 8, 3}), model::data_type{});
  flotilla::tcp::learner_client client(learner, {.port = 1, .max_backoff = std::chrono::milliseconds(1)});
  client.stop();
  return client.run() == flotilla::tcp::client_exit::stopped ? 0 : 1;
}

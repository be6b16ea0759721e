// The program the tcp_learner subjects compile: an MLP learner served over TCP.
#pragma once

int main() {
  using model = flotilla::mlp<float>;
  flotilla::learner<model, model::data_type> learner(0, model({4, 8, 3}), model::data_type{});
  flotilla::tcp::learner_client client(learner, {.port = 1, .max_backoff = std::chrono::milliseconds(1)});
  client.stop();
  return client.run() == flotilla::tcp::client_exit::stopped ? 0 : 1;
}

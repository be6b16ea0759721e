// Compile-time subject: a learner served over the Asio TCP transport.
#include <flotilla/flotilla.hpp>
#include <flotilla/models.hpp>
#include <flotilla/transport/tcp/learner_client.hpp>

int main() {
  using model = flotilla::mlp<float>;
  flotilla::learner<model, model::data_type> learner(0, model({4, 8, 3}), model::data_type{});
  flotilla::tcp::learner_client client(learner, {.port = 1, .max_backoff = std::chrono::milliseconds(1)});
  client.stop();
  return client.run() == flotilla::tcp::client_exit::stopped ? 0 : 1;
}

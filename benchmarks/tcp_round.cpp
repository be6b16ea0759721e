// One round over TCP loopback moving a parameter set to 4 learners and back, against a plain
// blocking socket pair moving the same bytes (4 x the payload each way) in the same run.
// Usage: bench_tcp_round [parameters=25000000 (100 MB of float32)] [learners=4]
#include <flotilla/coordinator.hpp>
#include <flotilla/parameters.hpp>
#include <flotilla/transport/asio/learner_client.hpp>
#include <flotilla/transport/asio/server_transport.hpp>

#include <asio/connect.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include <cstdlib>
#include <memory>
#include <thread>
#include <vector>

#include "timing.hpp"

namespace {
using params = flotilla::parameters<float>;

// Trains nothing: answers each task with the parameters it was given.
struct echo_learner {
  using parameters_type = params;
  flotilla::learner_id learner = 0;
  flotilla::learner_id id() const { return learner; }
  flotilla::reply<params> handle(const flotilla::task<params>& work) {
    return {learner, work.kind, work.round, {1, {}}, *work.parameters};
  }
};

// The baseline: a connected pair of blocking sockets that moves `copies` x `bytes` one way and
// back, the sender and the receiver each on its own thread.
class socket_pair {
 public:
  socket_pair(std::size_t bytes, std::size_t copies)
      : copies_(copies), outgoing_(bytes, std::byte{1}), incoming_(bytes), echoed_(bytes) {
    asio::ip::tcp::acceptor acceptor(io_, {asio::ip::make_address("127.0.0.1"), 0});
    client_.connect(acceptor.local_endpoint());
    acceptor.accept(server_);
  }
  void exchange() {
    std::thread peer([&] {
      for (std::size_t i = 0; i < copies_; ++i) asio::read(server_, asio::buffer(incoming_));
      for (std::size_t i = 0; i < copies_; ++i) asio::write(server_, asio::buffer(incoming_));
    });
    for (std::size_t i = 0; i < copies_; ++i) asio::write(client_, asio::buffer(outgoing_));
    for (std::size_t i = 0; i < copies_; ++i) asio::read(client_, asio::buffer(echoed_));
    peer.join();
  }

 private:
  asio::io_context io_;
  asio::ip::tcp::socket client_{io_}, server_{io_};
  std::size_t copies_;
  std::vector<std::byte> outgoing_, incoming_, echoed_;
};
}  // namespace

int main(int argc, char** argv) {
  const std::size_t size = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 25'000'000;
  const std::size_t count = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 4;
  const double bytes = double(size) * sizeof(float);
  // This process plays the aggregator and every learner: give it the buffer cache of all of them.
  flotilla::set_large_buffer_cache(8 * (count + 1), std::size_t{2} << 30 << (count > 1 ? 2 : 0));

  flotilla::tcp::server_transport<params> transport({.log = nullptr});
  std::vector<std::unique_ptr<echo_learner>> learners;
  std::vector<std::thread> clients;
  for (std::size_t i = 0; i < count; ++i) learners.push_back(std::make_unique<echo_learner>(echo_learner{i}));
  for (std::size_t i = 0; i < count; ++i)
    clients.emplace_back([&, i] {
      flotilla::tcp::learner_client client(*learners[i], {.port = transport.port(), .log = nullptr});
      client.run();
    });
  params initial(flotilla::tensor_layout({{"w", {size}}}));
  for (std::size_t i = 0; i < size; ++i) initial.values()[i] = float(i % 101);
  flotilla::coordinator federation(transport, initial,
                                   {.quorum = count, .wait_for_learners = std::chrono::seconds(30)});
  socket_pair plain_sockets(static_cast<std::size_t>(bytes), count);
  federation.run_round();  // warm-up: connections, buffers, first touch of every page
  plain_sockets.exchange();
  const auto [round, plain] = bench::interleaved_best_seconds(
      7, [&] { federation.run_round(); }, [&] { plain_sockets.exchange(); });
  transport.say_goodbye();
  for (auto& client : clients) client.join();

  const double moved = 2 * double(count) * bytes;
  // ratio = Flotilla's throughput / the socket pair's; the target is >= 0.5 (a round within 2x).
  bench::report("tcp_round_throughput", moved / round / 1e9, "GB/s", "blocking_socket_pair_GB/s", moved / plain / 1e9);
}

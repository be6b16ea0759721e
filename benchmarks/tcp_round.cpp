// One round over TCP loopback moving a parameter set to 4 learner processes and back, against a
// plain blocking socket pair moving the same bytes (4 x the payload each way) in the same run;
// then the same round with each codec (compression/codec.hpp) against the float32 round.
// Usage: bench_tcp_round [parameters=25000000 (100 MB of float32)] [learners=4]
// (The learners are this program started again as `bench_tcp_round --learner PORT ID`.)
#include <flotilla/coordinators/synchronous.hpp>
#include <flotilla/parameters.hpp>
#include <flotilla/round/compressing_learner.hpp>
#include <flotilla/transport/tcp/learner_client.hpp>
#include <flotilla/transport/tcp/server_transport.hpp>

#include <asio/connect.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include <spawn.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "timing.hpp"

namespace {
using params = flotilla::parameters<float>;

// Trains nothing: answers each task with the parameters it was given, nudged (a change for the
// codecs to code).
struct echo_learner {
  using parameters_type = params;
  flotilla::learner_id learner = 0;
  flotilla::learner_id id() const { return learner; }
  flotilla::reply<params> handle(const flotilla::task<params>& work) {
    flotilla::reply<params> answer{learner, work.kind, work.round, {1, {}}, *work.parameters};
    auto values = answer.parameters->values();
    for (std::size_t i = 0; i < values.size(); ++i) values[i] += 1e-3f * float((i * 2654435761u) % 1000);
    return answer;
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

// A learner process: echoes every task until the aggregator says goodbye.
int run_learner(unsigned short port, flotilla::learner_id id) {
  flotilla::compressing_learner<echo_learner> learner(echo_learner{id});
  flotilla::tcp::learner_client client(learner, {.port = port, .log = nullptr});
  client.run();
  return 0;
}

// Starts this program again as learner `id`; returns its process id.
pid_t start_learner(unsigned short port, flotilla::learner_id id) {
  std::string program = "/proc/self/exe", flag = "--learner", port_text = std::to_string(port),
              id_text = std::to_string(id);
  char* arguments[] = {program.data(), flag.data(), port_text.data(), id_text.data(), nullptr};
  pid_t child = 0;
  if (const int error = posix_spawn(&child, program.c_str(), nullptr, nullptr, arguments, environ); error != 0) {
    std::fprintf(stderr, "cannot start a learner process: %s\n", std::strerror(error));
    std::exit(1);
  }
  return child;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::string(argv[1]) == "--learner")
    return run_learner(static_cast<unsigned short>(std::stoul(argv[2])), std::stoull(argv[3]));
  const std::size_t size = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 25'000'000;
  const std::size_t count = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 4;
  const double bytes = double(size) * sizeof(float);

  flotilla::tcp::server_transport<params> transport({.log = nullptr});
  std::vector<pid_t> learners;
  for (std::size_t i = 0; i < count; ++i) learners.push_back(start_learner(transport.port(), i));
  params initial(flotilla::tensor_layout({{"w", {size}}}));
  for (std::size_t i = 0; i < size; ++i) initial.values()[i] = float(i % 101);
  flotilla::coordinator federation(transport, initial,
                                   {.quorum = count, .wait_for_learners = std::chrono::seconds(30)});
  socket_pair plain_sockets(static_cast<std::size_t>(bytes), count);
  federation.run_round();  // warm-up: connections, buffers, first touch of every page
  plain_sockets.exchange();
  const auto [round, plain] = bench::interleaved_best_seconds(
      7, [&] { federation.run_round(); }, [&] { plain_sockets.exchange(); });
  const double moved = 2 * double(count) * bytes;
  // ratio = Flotilla's throughput / the socket pair's; the target is >= 0.5 (a round within 2x).
  bench::report("tcp_round_throughput", moved / round / 1e9, "GB/s", "blocking_socket_pair_GB/s", moved / plain / 1e9);

  // The tail: 20 single rounds, each beside one socket-pair exchange. The 10th percentile of the
  // ratios is the slow runs' (target >= 0.6); where they lose time, from the round's own record:
  // the fit phase (tasks out, learners' work, replies in and folded) against the rest (applying).
  struct run {
    double ratio, round_s, fit_s;
  };
  std::vector<run> runs;
  bench::ratio_runs tail;
  for (int r = 0; r < 20; ++r) {
    const auto [one_round, one_pair] = bench::interleaved_best_seconds(1, [&] { federation.run_round(); },
                                                                     [&] { plain_sockets.exchange(); });
    const auto& record = federation.history().rounds.back();
    runs.push_back({one_pair / one_round, record.round_seconds, record.fit_seconds});
    tail.ratios.push_back(one_pair / one_round);
  }
  std::printf("name=tcp_round_tail_p10 value=%.3f unit=ratio baseline=blocking_socket_pair ratio=%.3f ratio_median=%.3f "
              "ratio_min=%.3f ratio_max=%.3f runs=20 target=>=0.6\n",
              tail.quantile(0.1), tail.quantile(0.1), tail.median(), tail.lowest(), tail.highest());
  std::ranges::sort(runs, {}, &run::ratio);
  for (const auto& slow : {runs.front(), runs[runs.size() / 2], runs.back()})
    std::printf("# tail: ratio %.3f: round %.1f ms, of which fit phase %.1f ms and the rest %.1f ms\n", slow.ratio,
                1e3 * slow.round_s, 1e3 * slow.fit_s, 1e3 * (slow.round_s - slow.fit_s));
  std::fflush(stdout);

  // Each codec both ways (top_k replies with int8 tasks), against float32 rounds interleaved with
  // them: the model's float32 bytes moved per second, so a ratio above 1 is a faster round.
  namespace compression = flotilla::compression;
  for (const auto& [down, up] : std::vector<std::pair<const char*, const char*>>{
           {"float16", "float16"}, {"int8", "int8"}, {"int4", "int4"}, {"int8", "top_k:0.01"}}) {
    flotilla::coordinator coded(transport, initial,
                                {.quorum = count, .wait_for_learners = std::chrono::seconds(30),
                                 .compression = {compression::parse_codec(down), compression::parse_codec(up)}});
    coded.run_round();
    const auto [coded_round, float32_round] =
        bench::interleaved_best_seconds(5, [&] { coded.run_round(); }, [&] { federation.run_round(); });
    const std::string name = std::string("tcp_round_") + down + "_" + std::string(up).substr(0, std::string(up).find(':'));
    bench::report(name.c_str(), moved / coded_round / 1e9, "GB/s", "float32_round_GB/s", moved / float32_round / 1e9);
  }
  transport.say_goodbye();
  for (const pid_t learner : learners) waitpid(learner, nullptr, 0);
}

// Your own parameter type across processes: a polynomial whose coefficients live on the heap, with
// its own wire codec (14 lines below), the shape any parameter type can take. The library would
// give this one a codec too, since its layout is its count (CountedParameters), as it does types
// that keep their values inline (FixedShapeParameters, the std::array in 01_your_own_model.cpp);
// an explicit specialization always wins. The program is the aggregator and starts three learner
// processes of itself; each holds points from its own stretch of y = 1 + 2x - 0.5x^2, and
// together they recover the curve over real TCP on 127.0.0.1.
//   06_your_own_parameters                       the aggregator (starts the learners)
//   06_your_own_parameters --learner ID --port P  one learner (what the aggregator starts)
#include <flotilla/coordinators/synchronous.hpp>
#include <flotilla/round/learner.hpp>
#include <flotilla/transport/tcp/learner_client.hpp>
#include <flotilla/transport/tcp/server_transport.hpp>

#include <spawn.h>     // posix_spawn: the learners are processes of their own
#include <sys/wait.h>  // waitpid

#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <utility>
#include <vector>

extern char** environ;

// A ParameterSet holding its values on the heap: its size is not fixed by its type.
class polynomial {
 public:
  using scalar_type = double;
  polynomial() : polynomial(3) {}  // 1 + x + x^2 terms
  explicit polynomial(std::size_t coefficients) : c_(coefficients, 0.0) {}
  std::span<double> values() { return c_; }
  std::span<const double> values() const { return c_; }
  std::size_t layout() const { return c_.size(); }  // the degree + 1 is the whole layout
  double operator()(double x) const {
    double y = 0;
    for (auto it = c_.rbegin(); it != c_.rend(); ++it) y = y * x + *it;  // Horner
    return y;
  }

 private:
  std::vector<double> c_;
};

// Its wire codec: the count, then the values as one block. `read_count` bounds the count by the
// reader's limits (the model in play) and the bytes left, before anything is allocated;
// `read_final_block` lets a transport receive a large tail straight into the values.
template <>
struct flotilla::wire_codec<polynomial> {
  static void write(flotilla::wire_writer& out, const polynomial& p) {
    out.write(static_cast<std::uint64_t>(p.values().size()));
    out.write_block(p.values());
  }
  static polynomial read(flotilla::wire_reader& in) {
    polynomial p(in.read_count(in.limits().max_scalars, sizeof(double), "coefficient count"));
    in.read_final_block(p.values(), "coefficients");
    return p;
  }
};

using points = std::vector<std::pair<double, double>>;  // (x, y)

// A Model trainable on `points`: gradient descent on the squared error.
struct polynomial_model {
  polynomial p;
  const polynomial& parameters() const { return p; }
  void set_parameters(const polynomial& q) { p = q; }

  flotilla::local_result fit(const points& data, const flotilla::fit_config& config) {
    const double rate = config.get("learning_rate", 0.05);
    auto c = p.values();
    for (int step = 0; step < 20; ++step) {
      std::vector<double> gradient(c.size(), 0.0);
      for (auto [x, y] : data) {
        const double residual = p(x) - y;
        double power = 1;
        for (auto& g : gradient) {
          g += 2 * residual * power / double(data.size());
          power *= x;
        }
      }
      for (std::size_t i = 0; i < c.size(); ++i) c[i] -= rate * gradient[i];
    }
    return {.examples = static_cast<std::int64_t>(data.size()), .metrics = {}};
  }
};

using learner_type = flotilla::learner<polynomial_model, points>;

int run_learner(flotilla::learner_id id, std::uint16_t port) {
  points local;
  for (int i = 0; i < 20; ++i) {
    const double x = -1 + double(id) + 0.05 * i;  // learner 0 sees x in [-1, 0), 1 [0, 1), 2 [1, 2)
    local.emplace_back(x, 1 + 2 * x - 0.5 * x * x);
  }
  learner_type learner(id, polynomial_model{}, std::move(local));
  flotilla::tcp::client_options options;
  options.port = port;
  options.log = [](const std::string&) {};  // the aggregator reports progress
  flotilla::tcp::learner_client client(learner, options);
  return client.run() == flotilla::tcp::client_exit::goodbye ? 0 : 1;
}

int main(int argc, char** argv) {
  if (argc == 5 && std::string(argv[1]) == "--learner")
    return run_learner(std::stoull(argv[2]), static_cast<std::uint16_t>(std::stoul(argv[4])));

  flotilla::tcp::server_options options;  // 127.0.0.1 on a port the system picks
  options.log = [](const std::string&) {};
  flotilla::tcp::server_transport<polynomial> transport(options);
  const auto port = std::to_string(transport.port());
  std::vector<pid_t> learners;
  for (const char* id : {"0", "1", "2"}) {
    std::vector<char*> args{argv[0], const_cast<char*>("--learner"), const_cast<char*>(id),
                            const_cast<char*>("--port"), const_cast<char*>(port.c_str()), nullptr};
    pid_t pid = 0;
    if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, args.data(), environ) != 0) {
      std::perror("posix_spawn");
      return 1;
    }
    learners.push_back(pid);
  }
  flotilla::coordinator_options rounds;
  rounds.quorum = 3;
  rounds.wait_for_learners = std::chrono::seconds(30);
  flotilla::coordinator federation(transport, polynomial(3), rounds);
  federation.run(flotilla::stop::after_rounds(300));
  transport.say_goodbye();
  int failed = 0;
  for (const auto pid : learners) {
    int status = 0;
    waitpid(pid, &status, 0);
    failed += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  const auto c = federation.global().values();
  std::printf("coefficients=%.3f %.3f %.3f (true: 1, 2, -0.5) learner_failures=%d\n", c[0], c[1], c[2], failed);
  return failed == 0 ? 0 : 1;
}

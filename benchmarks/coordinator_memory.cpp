// The coordinator's peak memory for one round against the number of learners. The learners live
// elsewhere (as they do over TCP): a transport makes each learner's reply only when the
// coordinator asks for the next message, so the process holds what the coordinator holds. Each
// configuration runs in a child process and reports that process's peak resident set, next to
// the bound 4 x model + 64 MB and to what gathering every update first would need (MB here are
// MiB, as the kernel counts).
// Usage: bench_coordinator_memory
#include <flotilla/coordinators/synchronous.hpp>
#include <flotilla/parameters.hpp>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <deque>
#include <optional>
#include <vector>

namespace {
using params = flotilla::parameters<float>;

// Replies are made one at a time, when received: a learner's update is the global plus 0.001.
// A reply arrives only while the coordinator waits for one: asked with a deadline already past
// (is anything else waiting?), these learners have nothing yet, as learners elsewhere that
// answer no faster than the coordinator folds.
struct remote_learners {
  using parameters_type = params;
  std::size_t count;
  std::deque<flotilla::learner_id> asked;
  std::shared_ptr<const params> global;
  std::uint64_t round = 0;

  std::vector<flotilla::learner_id> available() const {
    std::vector<flotilla::learner_id> all(count);
    for (std::size_t i = 0; i < count; ++i) all[i] = i;
    return all;
  }
  void send(const flotilla::task<params>& work, std::span<const flotilla::learner_id> to) {
    asked.assign(to.begin(), to.end());
    global = work.parameters;
    round = work.round;
  }
  std::optional<flotilla::message<params>> receive(flotilla::deadline_clock::time_point deadline) {
    if (asked.empty() || deadline <= flotilla::deadline_clock::now()) return std::nullopt;
    const auto id = asked.front();
    asked.pop_front();
    params update = *global;
    for (auto& v : update.values()) v += 0.001f;
    return flotilla::reply<params>{id, flotilla::task_kind::fit, round, {1, {}}, std::move(update)};
  }
};

// Runs one round in a child process; returns the child's peak resident set in MB.
double peak_mb(std::size_t learners, std::size_t size) {
  const pid_t child = fork();
  if (child == 0) {
    remote_learners transport{.count = learners, .asked = {}, .global = nullptr};
    const params initial(flotilla::tensor_layout({{"w", {size}}}));
    flotilla::coordinator federation(transport, initial, {.quorum = learners});
    federation.run_round();
    _exit(federation.history().rounds.back().participants.size() == learners ? 0 : 1);
  }
  int status = 0;
  rusage usage{};
  wait4(child, &status, 0, &usage);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) std::fprintf(stderr, "round failed for %zu learners\n", learners);
  return double(usage.ru_maxrss) / 1024;  // KiB on Linux
}
}  // namespace

int main() {
  struct configuration {
    std::size_t learners, parameters;
  };
  for (const auto [learners, size] : {configuration{10, 10'000'000}, configuration{100, 10'000'000},
                                      configuration{1000, 1'000'000}}) {
    const double model_mb = double(size) * sizeof(float) / (1 << 20);
    const double bound = 4 * model_mb + 64;
    const double peak = peak_mb(learners, size);
    std::printf("# %zu learners x %zu parameters (%.0f MB each): peak %.0f MB; bound 4 x model + 64 MB = %.0f MB; "
                "gathering every update first would hold %.0f MB of updates alone\n",
                learners, size, model_mb, peak, bound, model_mb * double(learners));
    const std::string name = "coordinator_peak_rss_" + std::to_string(learners) + "_learners";
    std::printf("name=%s value=%.0f unit=MB baseline=bound_4x_model_plus_64MB ratio=%.3f\n", name.c_str(), peak,
                peak / bound);
  }
}

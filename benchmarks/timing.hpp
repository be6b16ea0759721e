#pragma once
// Side-by-side timing: the best of several repetitions, and one machine-readable line per
// measurement, because a shared machine is noisy and only ratios from one run mean anything.

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <cstddef>
#include <cstdio>
#include <thread>
#include <utility>
#include <vector>

namespace bench {

template <class F>
double best_seconds(int repetitions, F&& work) {
  double best = 1e300;
  for (int i = 0; i < repetitions; ++i) {
    const auto start = std::chrono::steady_clock::now();
    work();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return best;
}

/// The best times of `subject` and `baseline`, run alternately so that both see the same
/// moments of a noisy machine: a quiet spell or a busy neighbour favours neither.
/// `prepare`, if given, runs untimed before every repetition of the subject (fresh inputs for a
/// subject that consumes them).
template <class Subject, class Baseline, class Prepare = void (*)()>
std::pair<double, double> interleaved_best_seconds(int repetitions, Subject&& subject, Baseline&& baseline,
                                                   Prepare prepare = [] {}) {
  std::pair<double, double> best{1e300, 1e300};
  for (int i = 0; i < repetitions; ++i) {
    prepare();
    best.first = std::min(best.first, best_seconds(1, subject));
    best.second = std::min(best.second, best_seconds(1, baseline));
  }
  return best;
}

/// A second thread that lives for the whole benchmark, so that a baseline pays a wake-up, not a
/// thread start, per pass (as Flotilla's own fold helpers do).
class helper_thread {
 public:
  static helper_thread& instance() {
    static helper_thread helper;
    return helper;
  }
  /// Runs `job` on the helper while the caller runs `own`, and returns when both are done.
  void run(const std::function<void()>& job, const std::function<void()>& own) {
    {
      std::lock_guard lock(mutex_);
      job_ = &job;
    }
    ready_.notify_one();
    own();
    std::unique_lock lock(mutex_);
    done_.wait(lock, [this] { return job_ == nullptr; });
  }
  ~helper_thread() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    ready_.notify_one();
    thread_.join();
  }

 private:
  helper_thread() : thread_([this] { work(); }) {}
  void work() {
    std::unique_lock lock(mutex_);
    for (;;) {
      ready_.wait(lock, [this] { return stopping_ || job_ != nullptr; });
      if (stopping_) return;
      lock.unlock();
      (*job_)();
      lock.lock();
      job_ = nullptr;
      done_.notify_one();
    }
  }
  std::mutex mutex_;
  std::condition_variable ready_, done_;
  const std::function<void()>* job_ = nullptr;
  bool stopping_ = false;
  std::thread thread_;
};

/// Runs body(begin, end) on two threads over halves of [0, size): the plain loops' parallelism.
template <class Body>
void on_two_threads(std::size_t size, Body body) {
  helper_thread::instance().run([&] { body(size / 2, size); }, [&] { body(std::size_t{0}, size / 2); });
}

/// Ratios of a subject to its baseline (baseline seconds over subject seconds: above 1 is faster)
/// over several runs, each the best of a few interleaved repetitions: the spread says how far
/// one run's ratio can be trusted on a shared machine.
struct ratio_runs {
  std::vector<double> ratios;
  double subject_seconds = 0, baseline_seconds = 0;  // the medians' times

  [[nodiscard]] double quantile(double q) const {
    auto sorted = ratios;
    std::ranges::sort(sorted);
    return sorted[std::min(sorted.size() - 1, std::size_t(q * double(sorted.size())))];
  }
  [[nodiscard]] double median() const { return quantile(0.5); }
  [[nodiscard]] double lowest() const { return *std::ranges::min_element(ratios); }
  [[nodiscard]] double highest() const { return *std::ranges::max_element(ratios); }
};

template <class Subject, class Baseline, class Prepare = void (*)()>
ratio_runs measure_ratio(int runs, int repetitions, Subject&& subject, Baseline&& baseline,
                         Prepare prepare = [] {}) {
  ratio_runs result;
  std::vector<std::pair<double, double>> times;
  for (int r = 0; r < runs; ++r) {
    const auto [s, b] = interleaved_best_seconds(repetitions, subject, baseline, prepare);
    times.emplace_back(s, b);
    result.ratios.push_back(b / s);
  }
  std::ranges::sort(times, {}, [](const auto& t) { return t.second / t.first; });
  result.subject_seconds = times[times.size() / 2].first;
  result.baseline_seconds = times[times.size() / 2].second;
  return result;
}

/// One line: the median run's values and ratio, then the lowest and highest ratio of the runs.
inline void report_runs(const char* name, const ratio_runs& runs, double work, const char* unit, const char* baseline,
                        const char* target = nullptr) {
  std::printf("name=%s value=%.4g unit=%s baseline=%s baseline_value=%.4g ratio=%.3f ratio_min=%.3f ratio_max=%.3f "
              "runs=%zu%s%s\n",
              name, work / runs.subject_seconds, unit, baseline, work / runs.baseline_seconds, runs.median(), runs.lowest(),
              runs.highest(), runs.ratios.size(), target ? " target=" : "", target ? target : "");
  std::fflush(stdout);
}

inline void report(const char* name, double value, const char* unit, const char* baseline, double baseline_value) {
  std::printf("name=%s value=%.4g unit=%s baseline=%s ratio=%.3f\n", name, value, unit, baseline, value / baseline_value);
}

}  // namespace bench

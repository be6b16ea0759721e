// Must not compile: clipping in front of FedAvg's weighted mean. Learners choose their example
// counts, so one claiming many would move the mean by more than the clip norm allows. Expected
// diagnostic (CTest checks it): the static_assert that says so.
#include <flotilla/aggregators/mean.hpp>
#include <flotilla/algorithms/privacy/server.hpp>
#include <flotilla/parameters.hpp>

int main() {
  using params = flotilla::parameters<float>;
  flotilla::privacy::clip_updates<params, flotilla::weighted_mean<params>> rule(1.0);
  (void)rule;
}

#pragma once
// FedProx (Li et al. 2020), the learner side: local training minimizes the data loss plus
// (mu / 2) ||w - w_global||^2, where w_global are the parameters the round's fit started from.
// The server side is FedAvg (aggregators/mean.hpp). Models turn it on through sgd_options'
// "proximal_mu", which a coordinator can send in fit_config::values.

#include <optional>

#include "flotilla/arithmetic.hpp"
#include "flotilla/concepts/parameter_set.hpp"

namespace flotilla {

/// The proximal term's gradient mu (w - w_global), taken at the same w as the data gradient:
/// call before_step(w) before a step's data update and after_step(w, rate) after it.
template <ParameterSet P>
class proximal_term {
 public:
  /// Off (no copies made) when mu is 0.
  proximal_term(const P& start, double mu) : mu_(mu) {
    if (mu_ > 0) {
      anchor_.emplace(start);
      pull_.emplace(start);
    }
  }
  void before_step(const P& w) {
    if (!anchor_) return;
    const auto now = w.values();
    const auto anchor = anchor_->values();
    auto pull = pull_->values();
    for (std::size_t i = 0; i < pull.size(); ++i) pull[i] = now[i] - anchor[i];
  }
  void after_step(P& w, double rate) {
    if (anchor_) axpy(w, static_cast<typename P::scalar_type>(-rate * mu_), *pull_);
  }

 private:
  double mu_;
  std::optional<P> anchor_, pull_;
};

}  // namespace flotilla

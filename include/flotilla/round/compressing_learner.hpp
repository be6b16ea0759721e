#pragma once
// The learner's side of compression: replies coded as their task asks.

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>

#include "flotilla/compression/codec.hpp"
#include "flotilla/concepts/learner.hpp"
#include "flotilla/errors.hpp"
#include "flotilla/messages.hpp"
#include "flotilla/random.hpp"

namespace flotilla {

/// @brief `L`, answering fit tasks in the codec they name (task::reply_codec): its change to the
/// task's parameters, coded. With top_k, what it leaves out is carried to its next reply (error
/// feedback, Stich, Cordonnier and Jaggi 2018), so nothing is dropped for good. Tasks that name
/// no codec, and other kinds of task, pass through; parameters that travelled coded reach `L`
/// already decoded.
template <Learner L>
class compressing_learner {
 public:
  using parameters_type = typename L::parameters_type;

  explicit compressing_learner(L inner) : inner_(std::move(inner)) {}
  [[nodiscard]] learner_id id() const { return inner_.id(); }
  [[nodiscard]] const L& inner() const { return inner_; }
  [[nodiscard]] L& inner() { return inner_; }

  /// What top_k has not sent yet: added to the next change before it is coded (empty before the
  /// first top_k reply).
  [[nodiscard]] std::span<const float> residual() const {
    return encoder_ ? encoder_->residual() : std::span<const float>{};
  }

  reply<parameters_type> handle(const task<parameters_type>& work) {
    auto answer = inner_.handle(work);
    const auto& spec = work.reply_codec;
    if (work.kind != task_kind::fit || spec.kind == compression::codec::none || !answer.parameters || !work.parameters)
      return answer;
    if constexpr (!std::is_same_v<typename parameters_type::scalar_type, float>) {
      throw task_error("the round asks for replies in " + spec.name() + ", which codes 32-bit floats; this model holds " +
                       std::to_string(8 * sizeof(typename parameters_type::scalar_type)) + "-bit scalars");
    } else {
      auto change = answer.parameters->values();
      const auto base = work.parameters->values();
      if (change.size() != base.size()) return answer;  // the door names the layout it should have had
      for (std::size_t i = 0; i < change.size(); ++i) change[i] -= base[i];
      if (spec.kind == compression::codec::top_k) {
        if (!encoder_ || !(encoder_spec_ == spec)) {  // another fraction: start owing nothing
          encoder_.emplace(spec.fraction);
          encoder_spec_ = spec;
        }
        answer.coded_update = compression::encode(change, *encoder_, spec);
      } else {
        answer.coded_update = compression::encode(change, spec, mix_seed(work.config.seed, id()));
      }
      answer.parameters.reset();
      return answer;
    }
  }

 private:
  L inner_;
  std::optional<compression::top_k_encoder> encoder_;
  compression::codec_spec encoder_spec_{};
};

}  // namespace flotilla

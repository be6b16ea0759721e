#pragma once
// The learner side of the TCP transport: dials the aggregator, registers, answers tasks, and
// reconnects with exponential backoff whenever the connection drops (an aggregator restart
// included) until the aggregator says goodbye, refuses it, or stop() is called. Training runs on
// its own thread, so heartbeats keep flowing while the model trains.
//
// The network engine is not a template (detail/client_core.hpp): this header adds only what
// depends on the learner's type, so it parses no Asio in the compiled mode.

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>

#include "flotilla/concepts/learner.hpp"
#include "flotilla/detail/config.hpp"
#include "flotilla/detail/text.hpp"
#include "flotilla/errors.hpp"
#include "flotilla/messages.hpp"
#include "flotilla/transport/tcp/detail/client_core.hpp"
#include "flotilla/transport/tcp/protocol.hpp"
#include "flotilla/wire/messages.hpp"

namespace flotilla::tcp {

namespace detail {
/// A learner that can show its model's parameters, so tasks can be bounded by them.
template <class L>
concept exposes_model_parameters = requires(const L& l) {
  { l.model().parameters() } -> std::convertible_to<const typename L::parameters_type&>;
};
}  // namespace detail

/// @brief Serves one `Learner` to a remote aggregator until the run ends.
template <class L>
class learner_client final : private detail::served_learner {
  // In the body, not the template head: an error names the unmet requirement or what to write.
  static_assert(flotilla::detail::explain_learner<L>());
  static_assert(flotilla::detail::explain_wire_codable<typename L::parameters_type>());

 public:
  using parameters_type = typename L::parameters_type;

  learner_client(L& learner, client_options options)
      : learner_(learner), core_(*this, with_learner_properties(learner, std::move(options))) {
    // Taken now, before training can change the model on the worker thread.
    if constexpr (detail::exposes_model_parameters<L>) {
      const auto& own = learner_.model().parameters();
      own_model_.emplace(own_model{own.layout(), own.values().size()});
    }
  }
  learner_client(const learner_client&) = delete;
  learner_client& operator=(const learner_client&) = delete;
  ~learner_client() override = default;

  /// Connects, serves tasks and reconnects until the run ends; returns why it ended.
  client_exit run() { return core_.run(); }

  /// Ends run() from another thread.
  void stop() { core_.stop(); }

 private:
  [[nodiscard]] learner_id id() const override { return learner_.id(); }

  /// The largest task frame accepted: the own model's scalars plus room for its layout and the
  /// task's settings when the learner shows its model, the configured maximum otherwise.
  [[nodiscard]] std::uint64_t task_limit(std::uint64_t max_payload) const override {
    if (!own_model_) return max_payload;
    return std::min<std::uint64_t>(max_payload,
                                   own_model_->scalars * sizeof(typename parameters_type::scalar_type) + task_head_room);
  }

  /// A learner that shows its model refuses, from the first chunk, a task for any other layout.
  std::optional<std::span<std::byte>> start_task(std::span<const std::byte> first, std::uint64_t total) override {
    auto started = decode_task_start<parameters_type>(first, total, limits());
    if (!started) return std::nullopt;
    check(started->message);
    decoded_ = std::move(started->message);
    return started_decode<task<parameters_type>>::final_bytes(*decoded_, started->rest_bytes);
  }

  void whole_task(std::span<const std::byte> payload) override {
    auto work = decode_task<parameters_type>(payload, limits());
    check(work);
    decoded_ = std::move(work);
  }

  /// The reply's parameters are written straight from the reply (no encoded copy).
  detail::received_task take_task() override {
    auto work = std::move(*decoded_);
    decoded_.reset();
    const auto round = work.round;
    const auto kind = work.kind;
    return {round, kind, [this, work = std::move(work)]() mutable -> outgoing_frame {
              try {
                auto result = std::make_shared<const reply<parameters_type>>(learner_.handle(work));
                work.parameters.reset();  // the model holds them now: one copy fewer while sending
                return make_message_frame(frame_type::reply, work.round, std::move(result));
              } catch (const std::exception& error) {
                return make_frame(frame_type::failure, work.round, encode_reason(work.kind, error.what()));
              }
            }};
  }

  // The learner's own properties, unless the options give some.
  static client_options with_learner_properties(const L& learner, client_options options) {
    if constexpr (requires { { learner.properties() } -> std::convertible_to<settings>; })
      if (options.properties.empty()) options.properties = learner.properties();
    return options;
  }

  decode_limits limits() const {
    decode_limits limits;
    limits.max_entries = 256;  // settings
    if (own_model_) limits.max_scalars = own_model_->scalars;
    return limits;
  }

  void check(const task<parameters_type>& work) const {
    if (!own_model_ || !work.parameters) return;
    if (work.parameters->values().size() != own_model_->scalars)
      throw protocol_error("task has " + flotilla::detail::grouped(work.parameters->values().size()) +
                           " parameters; this learner's model has " + flotilla::detail::grouped(own_model_->scalars));
    if (!(work.parameters->layout() == own_model_->layout))
      throw protocol_error("task's parameter layout differs from this learner's model's");
  }

  // Room in a task beyond its model's scalars: the layout's names and shapes and the settings.
  static constexpr std::uint64_t task_head_room = std::uint64_t{1} << 20;

  // What tasks must look like, when the learner shows its model.
  struct own_model {
    std::remove_cvref_t<decltype(std::declval<const parameters_type&>().layout())> layout;
    std::size_t scalars;
  };

  L& learner_;
  std::optional<own_model> own_model_;
  std::optional<task<parameters_type>> decoded_;  // network thread only
  detail::client_core core_;  // last: its worker thread ends before the members above go
};

}  // namespace flotilla::tcp

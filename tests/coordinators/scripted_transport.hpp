#pragma once
// A transport that answers each task with exactly the replies and failures a test lists, in
// order, and then goes quiet (as if the deadline passed): the door and the rules, tested message
// by message. The real in-memory transport is exercised in federation.cpp.

#include <flotilla/concepts/transport.hpp>
#include <flotilla/messages.hpp>
#include <flotilla/parameters.hpp>
#include <flotilla/round/history.hpp>

#include <deque>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace scripted {

using params = flotilla::parameters<double>;
using message = flotilla::message<params>;
using flotilla::learner_id;
using flotilla::task_kind;

inline params of(std::vector<double> values, const char* name = "w") {
  params p(flotilla::tensor_layout({{name, {values.size()}}}));
  for (std::size_t i = 0; i < values.size(); ++i) p.values()[i] = values[i];
  return p;
}
inline std::vector<double> values_of(const params& p) { return {p.values().begin(), p.values().end()}; }

struct scripted_transport {
  using parameters_type = params;
  std::vector<learner_id> learners{};
  std::function<std::vector<message>(const flotilla::task<params>&, std::span<const learner_id>)> respond{};
  std::deque<message> queue{};
  std::vector<flotilla::task<params>> sent{};
  std::vector<std::vector<learner_id>> recipients{};

  std::vector<learner_id> available() const { return learners; }
  void send(const flotilla::task<params>& work, std::span<const learner_id> to) {
    sent.push_back(work);
    recipients.emplace_back(to.begin(), to.end());
    for (auto& m : respond(work, to)) queue.push_back(std::move(m));
  }
  std::optional<message> receive(flotilla::deadline_clock::time_point) {
    if (queue.empty()) return std::nullopt;
    auto next = std::move(queue.front());
    queue.pop_front();
    return next;
  }
};
static_assert(flotilla::Transport<scripted_transport>);

inline flotilla::reply<params> fit_reply(learner_id learner, std::uint64_t round, std::optional<params> p,
                                  std::int64_t examples = 1, flotilla::metrics metrics = {}) {
  return {learner, task_kind::fit, round, {examples, std::move(metrics)}, std::move(p)};
}

inline std::vector<std::string> reasons(const flotilla::round_record& record) {
  std::vector<std::string> out;
  for (const auto& r : record.rejections) out.push_back(std::to_string(r.learner) + ": " + r.reason);
  return out;
}

}  // namespace scripted

#pragma once
// Secure aggregation, the aggregator's side: one round's state machine (protocol.hpp describes
// the stages). It routes keys and sealed shares it cannot read, collects masked inputs, asks the
// survivors for exactly the shares it needs, and removes the masks: what it learns is the sum of
// the quantized updates of the learners that sent input, and who dropped when.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "flotilla/algorithms/secure_aggregation/protocol.hpp"

namespace flotilla::secure_aggregation {

/// @brief The neighbours of each of n learners (indices 1 to n) on a Harary graph of degree k
/// over a random order of the learners: each is linked to the k/2 nearest on either side of the
/// ring (all others when k >= n - 1).
class harary_graph {
 public:
  /// `order[p]` is the index at ring position p: a permutation of 1..n.
  harary_graph(std::vector<std::uint64_t> order, std::size_t degree) : order_(std::move(order)), degree_(degree) {
    const auto n = order_.size();
    std::vector<std::uint64_t> sorted = order_;
    std::sort(sorted.begin(), sorted.end());
    for (std::size_t i = 0; i < n; ++i)
      if (sorted[i] != i + 1) throw configuration_error("a graph's order must be a permutation of 1 to n");
    position_.resize(n + 1);
    for (std::size_t p = 0; p < n; ++p) position_[order_[p]] = p;
  }
  /// A uniformly random order from OpenSSL's generator (Fisher-Yates).
  static harary_graph random(std::size_t learners, std::size_t degree) {
    std::vector<std::uint64_t> order(learners);
    for (std::size_t i = 0; i < learners; ++i) order[i] = i + 1;
    for (std::size_t i = learners; i > 1; --i) std::swap(order[i - 1], order[detail::random_below(i)]);
    return harary_graph(std::move(order), degree);
  }

  [[nodiscard]] std::size_t size() const { return order_.size(); }
  [[nodiscard]] std::vector<std::uint64_t> neighbours(std::uint64_t index) const {
    const auto n = order_.size();
    std::vector<std::uint64_t> out;
    if (degree_ + 1 >= n) {
      for (std::uint64_t j = 1; j <= n; ++j)
        if (j != index) out.push_back(j);
      return out;
    }
    const std::size_t p = position_.at(index);
    for (std::size_t step = 1; step <= degree_ / 2; ++step) {
      out.push_back(order_[(p + step) % n]);
      out.push_back(order_[(p + n - step) % n]);
    }
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  std::vector<std::uint64_t> order_;
  std::vector<std::size_t> position_;
  std::size_t degree_;
};

/// @brief The aggregator's part in one secure round over n learners (indices 1 to n).
///
/// Each `receive_*` takes one learner's message, checks it, and returns the reason when it is
/// refused (the message is then ignored and the round goes on). `abort_reason()` says why the
/// round cannot finish, once it cannot.
class server_session {
 public:
  server_session(std::uint64_t round, harary_graph graph, std::size_t threshold, std::size_t values, quantization q,
                 update_encoding encoding = {})
      : round_(round), graph_(std::move(graph)), threshold_(threshold), values_(values), quantized_(q), encoding_(encoding) {
    q.validate(graph_.size(), encoding_.noise_stddev);
    if (threshold_ < 2 || threshold_ > graph_.size())
      throw configuration_error("a threshold of " + std::to_string(threshold_) + " cannot work with " +
                                std::to_string(graph_.size()) + " learners");
  }

  /// What learner `index` needs to take part.
  [[nodiscard]] round_setup setup_for(std::uint64_t index) const {
    return {.round = round_, .learners = graph_.size(), .index = index, .neighbours = graph_.neighbours(index),
            .threshold = threshold_, .values = values_, .quantized = quantized_, .encoding = encoding_};
  }

  // Stage 1.
  std::optional<std::string> receive_keys(const advertised_keys& keys) {
    if (auto problem = unknown(keys.index)) return problem;
    if (!keys_.emplace(keys.index, keys).second) return "keys from learner " + std::to_string(keys.index) + " a second time";
    return std::nullopt;
  }
  /// The keys of `index`'s neighbours that advertised.
  [[nodiscard]] std::vector<advertised_keys> keys_for(std::uint64_t index) const {
    std::vector<advertised_keys> out;
    for (const auto j : graph_.neighbours(index))
      if (const auto found = keys_.find(j); found != keys_.end()) out.push_back(found->second);
    return out;
  }

  // Stage 2.
  std::optional<std::string> receive_shares(std::uint64_t from, std::span<const sealed_shares> messages) {
    if (auto problem = unknown(from)) return problem;
    if (!keys_.contains(from)) return "shares from learner " + std::to_string(from) + ", which advertised no keys";
    if (shared_.contains(from)) return "shares from learner " + std::to_string(from) + " a second time";
    const auto neighbours = graph_.neighbours(from);
    for (const auto& message : messages)
      if (message.from != from || std::find(neighbours.begin(), neighbours.end(), message.to) == neighbours.end())
        return "learner " + std::to_string(from) + " sent a share message from " + std::to_string(message.from) + " to " +
               std::to_string(message.to) + ", not to one of its neighbours";
    shared_.insert(from);
    for (const auto& message : messages) inbox_[message.to].push_back(message);
    return std::nullopt;
  }
  /// The sealed shares addressed to `index`.
  [[nodiscard]] std::vector<sealed_shares> shares_for(std::uint64_t index) const {
    const auto found = inbox_.find(index);
    return found == inbox_.end() ? std::vector<sealed_shares>{} : found->second;
  }

  // Stage 3: the masked input is added to the running sum at once, so the aggregator holds one
  // model-sized vector, not one per learner.
  std::optional<std::string> receive_masked(const masked_input& input) {
    if (auto problem = unknown(input.index)) return problem;
    if (!shared_.contains(input.index)) return "masked input from learner " + std::to_string(input.index) + ", which shared no keys";
    if (masked_with_.contains(input.index))
      return "masked input from learner " + std::to_string(input.index) + " a second time";
    if (input.values.size() != values_)
      return "masked input from learner " + std::to_string(input.index) + " holds " + std::to_string(input.values.size()) +
             " values; the round expects " + std::to_string(values_);
    const auto neighbours = graph_.neighbours(input.index);
    for (const auto j : input.masked_with)
      if (std::find(neighbours.begin(), neighbours.end(), j) == neighbours.end() || !shared_.contains(j))
        return "learner " + std::to_string(input.index) + " claims a mask with learner " + std::to_string(j) +
               ", not a neighbour that shared keys";
    if (sum_.empty()) sum_.assign(values_, 0);
    const auto modulus = quantized_.modulus_mask();
    for (std::size_t i = 0; i < values_; ++i) sum_[i] = (sum_[i] + input.values[i]) & modulus;
    masked_with_.emplace(input.index, std::set<std::uint64_t>(input.masked_with.begin(), input.masked_with.end()));
    return std::nullopt;
  }

  /// Stage 4: for each neighbour of `index`, the self-seed share if it sent input, the mask-key
  /// share if it shared keys and then dropped.
  [[nodiscard]] unmask_request request_for(std::uint64_t index) const {
    unmask_request request;
    for (const auto j : graph_.neighbours(index)) {
      if (!shared_.contains(j)) continue;
      (masked_with_.contains(j) ? request.self_seed_of : request.mask_key_of).push_back(j);
    }
    return request;
  }
  std::optional<std::string> receive_unmask(const unmask_response& response) {
    if (auto problem = unknown(response.index)) return problem;
    if (!masked_with_.contains(response.index))
      return "unmasking shares from learner " + std::to_string(response.index) + ", which sent no input";
    if (!answered_.insert(response.index).second)
      return "unmasking shares from learner " + std::to_string(response.index) + " a second time";
    const auto expected = request_for(response.index);
    for (const auto& [j, held] : response.self_seed_shares) {
      if (std::find(expected.self_seed_of.begin(), expected.self_seed_of.end(), j) == expected.self_seed_of.end())
        continue;  // not asked for: ignored
      if (held.x != response.index) continue;
      seed_shares_[j].push_back(held);
    }
    for (const auto& [j, held] : response.mask_key_shares) {
      if (std::find(expected.mask_key_of.begin(), expected.mask_key_of.end(), j) == expected.mask_key_of.end()) continue;
      if (held.x != response.index) continue;
      key_shares_[j].push_back(held);
    }
    return std::nullopt;
  }

  /// @brief Why the round cannot finish, judged from what has arrived so far, or nothing: fewer
  /// than t learners left at the latest stage reached means no secret of theirs can be rebuilt.
  /// Call it between stages to abort early (the global parameters are then kept).
  [[nodiscard]] std::optional<std::string> abort_reason() const {
    const auto below = [this](std::size_t count, const char* what) -> std::optional<std::string> {
      if (count >= threshold_) return std::nullopt;
      return "only " + std::to_string(count) + " learners " + what + "; the threshold is " + std::to_string(threshold_);
    };
    if (!masked_with_.empty()) return below(masked_with_.size(), "sent masked input");
    if (!shared_.empty()) return below(shared_.size(), "shared keys");
    return below(keys_.size(), "advertised keys");
  }

  /// Learners that advertised keys, and those that then shared theirs: who the next stage asks.
  [[nodiscard]] std::vector<std::uint64_t> advertised() const {
    std::vector<std::uint64_t> out;
    for (const auto& [index, unused] : keys_) out.push_back(index);
    return out;
  }
  [[nodiscard]] std::vector<std::uint64_t> sharers() const { return {shared_.begin(), shared_.end()}; }

  /// Learners whose input is in the sum.
  [[nodiscard]] std::vector<std::uint64_t> contributors() const {
    std::vector<std::uint64_t> out;
    for (const auto& [index, unused] : masked_with_) out.push_back(index);
    return out;
  }

  /// @brief The sum of the contributors' quantized updates, masks removed.
  /// @throws security_error with the reason when it cannot be had: no input, a learner's self
  ///   seed or a dropped learner's mask key with fewer than t shares, or two survivors that
  ///   disagree on their pair.
  [[nodiscard]] std::vector<std::uint32_t> unmasked_sum() const {
    if (masked_with_.empty()) throw security_error("no learner sent masked input");
    std::vector<mask_term> masks;  // every mask to remove, applied in one pass over the sum
    for (const auto& [i, pairs] : masked_with_) {
      for (const auto j : pairs)
        if (masked_with_.contains(j) && !masked_with_.at(j).contains(i))
          throw security_error("learners " + std::to_string(i) + " and " + std::to_string(j) + " disagree on their pair");
      masks.push_back({rebuild(seed_shares_, i, "self-mask seed"), mask_sign::subtract});
    }
    for (const auto j : shared_) {
      if (masked_with_.contains(j)) continue;  // j sent input: its pairs cancel
      bool needed = false;
      for (const auto& [k, pairs] : masked_with_) needed = needed || pairs.contains(j);
      if (!needed) continue;
      const secret_key secret(rebuild(key_shares_, j, "mask key"));
      for (const auto& [k, pairs] : masked_with_) {
        if (!pairs.contains(j)) continue;
        // k applied pairwise_sign(k, j); undo it.
        masks.push_back({detail::pairwise_seed(secret.agree(keys_.at(k).mask_public), round_, k, j),
                         detail::pairwise_sign(k, j) == mask_sign::add ? mask_sign::subtract : mask_sign::add});
      }
    }
    std::vector<std::uint32_t> sum = sum_;
    apply_masks(sum, masks, quantized_.modulus_mask());
    return sum;
  }

  /// Shares of `owner`'s mask secret key the aggregator holds: below the threshold for every
  /// learner that sent input, so no single input can be unmasked.
  [[nodiscard]] std::size_t mask_key_shares_held(std::uint64_t owner) const {
    const auto found = key_shares_.find(owner);
    return found == key_shares_.end() ? 0 : found->second.size();
  }
  [[nodiscard]] std::size_t threshold() const { return threshold_; }
  [[nodiscard]] const quantization& quantized() const { return quantized_; }

 private:
  std::optional<std::string> unknown(std::uint64_t index) const {
    if (index == 0 || index > graph_.size())
      return "a message from learner " + std::to_string(index) + ", not in this round of " + std::to_string(graph_.size());
    return std::nullopt;
  }
  key_bytes rebuild(const std::map<std::uint64_t, std::vector<share>>& shares, std::uint64_t owner, const char* what) const {
    const auto found = shares.find(owner);
    const std::size_t held = found == shares.end() ? 0 : found->second.size();
    if (held < threshold_)
      throw security_error("learner " + std::to_string(owner) + "'s " + what + " has " + std::to_string(held) +
                           " shares; the threshold is " + std::to_string(threshold_));
    return combine(found->second, threshold_);
  }

  std::uint64_t round_;
  harary_graph graph_;
  std::size_t threshold_;
  std::size_t values_;
  quantization quantized_;
  update_encoding encoding_;
  std::map<std::uint64_t, advertised_keys> keys_;
  std::set<std::uint64_t> shared_;
  std::map<std::uint64_t, std::vector<sealed_shares>> inbox_;
  std::map<std::uint64_t, std::set<std::uint64_t>> masked_with_;
  std::vector<std::uint32_t> sum_;
  std::set<std::uint64_t> answered_;
  std::map<std::uint64_t, std::vector<share>> seed_shares_, key_shares_;
};

}  // namespace flotilla::secure_aggregation

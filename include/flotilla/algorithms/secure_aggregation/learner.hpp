#pragma once
// Secure aggregation, the learner side: one round's state machine (protocol.hpp describes the
// stages). It never includes the server side. Every secret lives in this object and is wiped
// with it: a learner that leaves a round forgets its keys.

#include <openssl/crypto.h>

#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "flotilla/algorithms/privacy/noise.hpp"
#include "flotilla/algorithms/privacy/openssl_random.hpp"
#include "flotilla/algorithms/secure_aggregation/protocol.hpp"

namespace flotilla::secure_aggregation {

/// @brief One learner's part in one secure round.
///
/// Messages that do not belong (from a non-neighbour, for another learner, twice from one
/// sender, a share whose tag does not verify) are set aside with the reason (rejections()), and
/// the round goes on while at least `threshold` neighbours remain.
class learner_session {
 public:
  /// @throws configuration_error for an index of 0, itself among its neighbours, a threshold
  ///   below 2 or above its neighbours, an index or neighbour beyond the round's learners, a
  ///   quantization whose sum could wrap, or an encoding out of its domain: a setup comes from
  ///   the network.
  explicit learner_session(round_setup setup) : setup_(std::move(setup)) {
    if (setup_.index == 0) throw configuration_error("a learner's index in a secure round starts at 1");
    const std::set<std::uint64_t> unique(setup_.neighbours.begin(), setup_.neighbours.end());
    if (unique.size() != setup_.neighbours.size() || unique.contains(setup_.index))
      throw configuration_error("a learner's neighbours must be distinct and not include itself");
    if (setup_.threshold < 2)
      throw configuration_error("a threshold of " + std::to_string(setup_.threshold) +
                                " would let any one neighbour rebuild this learner's secrets");
    if (setup_.neighbours.size() < setup_.threshold)
      throw configuration_error("a threshold of " + std::to_string(setup_.threshold) + " cannot work with " +
                                std::to_string(setup_.neighbours.size()) + " neighbours");
    if (setup_.learners != 0) {  // 0: a session built by hand, outside a round's setup
      if (setup_.index > setup_.learners || (!unique.empty() && *unique.rbegin() > setup_.learners))
        throw configuration_error("a learner's index and neighbours must be in [1, " + std::to_string(setup_.learners) + "]");
      setup_.quantized.validate(setup_.learners, setup_.encoding.noise_stddev);
    }
    const auto& e = setup_.encoding;
    if (e.max_weight < 0 || !(e.clip_norm >= 0) || !std::isfinite(e.clip_norm) || !(e.noise_stddev >= 0) ||
        !(e.noise_stddev <= 1048576.0))
      throw configuration_error("a secure round's max_weight, clip_norm and noise_stddev must be non-negative and finite "
                                "(noise at most 2^20 steps)");
  }

  learner_session(learner_session&&) = default;
  learner_session& operator=(learner_session&&) = default;
  learner_session(const learner_session&) = delete;
  learner_session& operator=(const learner_session&) = delete;
  /// Wipes the self-mask seed and the shares held (OpenSSL wipes the keys it holds itself).
  ~learner_session() {
    OPENSSL_cleanse(self_seed_.data(), self_seed_.size());
    for (auto& [j, both] : shares_) {
      OPENSSL_cleanse(both.first.y.data(), sizeof both.first.y);
      OPENSSL_cleanse(both.second.y.data(), sizeof both.second.y);
    }
  }

  /// Stage 1: fresh key pairs; the public halves go to the aggregator.
  advertised_keys advertise() {
    enter(stage::advertised, stage::created, "advertise()");
    cipher_ = secret_key::generate();
    mask_ = secret_key::generate();
    return {setup_.index, cipher_->public_key(), mask_->public_key()};
  }

  /// Stage 2: the self-mask seed and the mask secret key, shared among the neighbours that
  /// advertised, one sealed message each.
  /// @throws security_error when fewer than `threshold` neighbours advertised valid keys.
  std::vector<sealed_shares> share_keys(std::span<const advertised_keys> neighbours) {
    enter(stage::shared, stage::advertised, "share_keys()");
    for (const auto& keys : neighbours) {
      if (!is_neighbour(keys.index)) {
        reject("keys from learner " + std::to_string(keys.index) + ", not a neighbour");
      } else if (keys_.contains(keys.index)) {
        reject("keys from learner " + std::to_string(keys.index) + " a second time");
      } else {
        keys_.emplace(keys.index, keys);
      }
    }
    require_threshold(keys_.size(), "advertised keys");
    self_seed_ = make_key_pair().secret;  // 32 fresh random bytes
    std::vector<std::uint64_t> points;
    for (const auto& [index, keys] : keys_) points.push_back(index);
    const auto seed_shares = split(self_seed_, setup_.threshold, points);
    const auto key_shares = split(mask_->raw(), setup_.threshold, points);
    std::vector<sealed_shares> out;
    for (std::size_t i = 0; i < points.size(); ++i) {
      const auto key = share_keys_[points[i]] = detail::share_key(cipher_->agree(keys_.at(points[i]).cipher_public),
                                                                  setup_.round, setup_.index, points[i]);
      const auto plaintext = detail::encode_shares(seed_shares[i], key_shares[i]);
      out.push_back({setup_.index, points[i],
                     seal(key, detail::share_nonce(setup_.index, points[i]), plaintext,
                          detail::context_bytes("flotilla secagg shares", setup_.round, setup_.index, points[i]))});
    }
    return out;
  }

  /// Stage 3: keeps the shares its neighbours sent, then masks the update: quantized (plus its
  /// discrete Gaussian noise when the setup asks for it), plus its self mask, plus a pairwise
  /// mask toward every neighbour that sent it shares.
  /// @throws security_error when fewer than `threshold` neighbours sent shares.
  template <class Scalar, privacy::NoiseSource R = privacy::openssl_random>
  masked_input mask(std::span<const Scalar> update, std::span<const sealed_shares> received, R rounding = R()) {
    if (update.size() != setup_.values)
      throw layout_error("the update holds " + std::to_string(update.size()) + " values; the round expects " +
                         std::to_string(setup_.values));
    enter(stage::masked, stage::shared, "mask()");
    for (const auto& message : received) accept_shares(message);
    require_threshold(masked_with_.size(), "shared keys");
    masked_input out{setup_.index, std::vector<std::uint32_t>(update.size()), {}};
    auto noise_bits = rounding.fork(1);
    quantize(update, setup_.quantized, std::span(out.values), std::move(rounding));
    if (setup_.encoding.noise_stddev > 0) {  // distributed DP: this learner's share of the noise, modulo 2^b
      privacy::discrete_gaussian<R> noise(setup_.encoding.noise_stddev, std::move(noise_bits));
      const auto modulus = setup_.quantized.modulus_mask();
      for (auto& value : out.values) value = (value + std::uint32_t(noise())) & modulus;
    }
    std::vector<mask_term> masks{{self_seed_, mask_sign::add}};
    for (const auto j : masked_with_)
      masks.push_back({detail::pairwise_seed(mask_->agree(keys_.at(j).mask_public), setup_.round, setup_.index, j),
                       detail::pairwise_sign(setup_.index, j)});
    apply_masks(out.values, masks, setup_.quantized.modulus_mask());
    out.masked_with.assign(masked_with_.begin(), masked_with_.end());
    return out;
  }

  /// Stage 4: the shares the aggregator asks for. For any one neighbour it gets the self-seed
  /// share or the mask-key share, never both: with both it could unmask that learner alone.
  /// @throws security_error naming a neighbour asked for both.
  unmask_response unmask(const unmask_request& request) {
    if (stage_ != stage::masked) throw usage_error("unmask() before mask(): this learner sent no input");
    unmask_response out{setup_.index, {}, {}};
    for (const auto j : request.self_seed_of)
      if (std::find(request.mask_key_of.begin(), request.mask_key_of.end(), j) != request.mask_key_of.end())
        throw security_error("the aggregator asked for both shares of learner " + std::to_string(j) + "; refused");
    // A neighbour whose shares never arrived intact is skipped: the aggregator counts what it gets.
    for (const auto j : request.self_seed_of)
      if (const auto found = shares_.find(j); found != shares_.end()) out.self_seed_shares.emplace_back(j, found->second.first);
    for (const auto j : request.mask_key_of)
      if (const auto found = shares_.find(j); found != shares_.end()) out.mask_key_shares.emplace_back(j, found->second.second);
    return out;
  }

  /// Messages set aside, with the reason.
  [[nodiscard]] const std::vector<std::string>& rejections() const { return rejections_; }
  [[nodiscard]] const round_setup& setup() const { return setup_; }

 private:
  enum class stage : std::uint8_t { created, advertised, shared, masked };
  // Stages run once each, in order: a call out of order is the caller's bug.
  void enter(stage next, stage required, const char* call) {
    if (stage_ != required) throw usage_error(std::string(call) + " out of order in a secure round");
    stage_ = next;
  }
  bool is_neighbour(std::uint64_t j) const {
    return std::find(setup_.neighbours.begin(), setup_.neighbours.end(), j) != setup_.neighbours.end();
  }
  void reject(std::string reason) { rejections_.push_back(std::move(reason)); }
  void require_threshold(std::size_t live, const char* what) const {
    if (live < setup_.threshold)
      throw security_error("only " + std::to_string(live) + " neighbours " + what + "; the threshold is " +
                           std::to_string(setup_.threshold));
  }
  void accept_shares(const sealed_shares& message) {
    const auto j = message.from;
    if (message.to != setup_.index) return reject("shares for learner " + std::to_string(message.to) + " reached learner " +
                                                  std::to_string(setup_.index));
    if (!keys_.contains(j)) return reject("shares from learner " + std::to_string(j) + ", not a neighbour that advertised keys");
    if (shares_.contains(j)) return reject("shares from learner " + std::to_string(j) + " a second time");
    masked_with_.insert(j);  // the pairwise mask depends only on public keys: it is in effect even if the share is lost
    const auto plaintext = open(share_keys_.at(j), detail::share_nonce(j, setup_.index), message.ciphertext,
                                detail::context_bytes("flotilla secagg shares", setup_.round, j, setup_.index));
    if (!plaintext) return reject("shares from learner " + std::to_string(j) + " fail authentication");
    try {
      auto both = detail::decode_shares(*plaintext);
      if (both.first.x != setup_.index || both.second.x != setup_.index)
        return reject("shares from learner " + std::to_string(j) + " are for another point");
      shares_.emplace(j, std::move(both));
    } catch (const security_error& error) {
      reject(std::string("shares from learner ") + std::to_string(j) + ": " + error.what());
    }
  }
  round_setup setup_;
  stage stage_ = stage::created;
  std::optional<secret_key> cipher_, mask_;  // made by advertise()
  key_bytes self_seed_{};
  std::map<std::uint64_t, advertised_keys> keys_;
  std::map<std::uint64_t, key_bytes> share_keys_;  // one AEAD key per neighbour, both directions
  std::set<std::uint64_t> masked_with_;
  std::map<std::uint64_t, std::pair<share, share>> shares_;  // (self-seed share, mask-key share) per neighbour
  std::vector<std::string> rejections_;
};

}  // namespace flotilla::secure_aggregation

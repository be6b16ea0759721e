#pragma once
// SecAgg+ (Bell et al. 2020; Bonawitz et al. 2017 on the complete graph), both sides, as state
// machines that exchange plain messages: a transport carries them between the stages, as
// federated-compute names them: advertise keys -> share keys -> masked input -> unmasking.
//
//   advertise  each learner makes two X25519 pairs (one to agree pairwise mask seeds, one to
//              encrypt shares) and sends the public halves.
//   share      each learner Shamir-shares a fresh self-mask seed and its mask secret key among its
//              neighbours that advertised (threshold t), each share sealed with ChaCha20-Poly1305
//              under a key HKDF derives from the two learners' agreement.
//   mask       each learner sends its quantized update plus its self mask plus, for every
//              neighbour that shared, the pairwise mask (added toward higher indices, subtracted
//              toward lower ones, so each pair cancels in the sum).
//   unmask     survivors hand over, per neighbour, the self-seed share if that neighbour sent
//              its input, or the mask-key share if it dropped after sharing; never both. The
//              aggregator rebuilds, removes the masks, and is left with the sum alone.
// A learner with fewer than t live neighbours at any stage cannot be recovered: the round aborts
// with the reason.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "flotilla/algorithms/secure_aggregation/crypto.hpp"
#include "flotilla/algorithms/secure_aggregation/graph.hpp"
#include "flotilla/algorithms/secure_aggregation/masking.hpp"
#include "flotilla/algorithms/secure_aggregation/shamir.hpp"

namespace flotilla::secure_aggregation {

/// How learners turn their update into the vector they mask, beside its quantization.
struct update_encoding {
  /// Weights are examples capped at this, over it (Flower's max_weight); 0: every update weighs
  /// the same and the vector carries no weight.
  std::int64_t max_weight = 0;
  double clip_norm = 0;     ///< the L2 bound learners clip their delta to; 0: none
  double noise_stddev = 0;  ///< each learner's discrete Gaussian noise, in quantization steps; 0: none
};

/// A learner's place in one secure round: its index (1 to n, its Shamir point), its neighbours'
/// indices, the threshold and the round (bound into every key derivation and ciphertext), and
/// how its update becomes the vector it masks.
struct round_setup {
  std::uint64_t round = 0;
  std::uint64_t learners = 0;  ///< n, the learners the round began with
  std::uint64_t index = 0;
  std::vector<std::uint64_t> neighbours{};
  std::size_t threshold = 0;
  std::size_t values = 0;  ///< length of the masked vector (the update, plus its weight when weighted)
  quantization quantized{};
  update_encoding encoding{};
};

/// Stage 1's message: a learner's two public keys.
struct advertised_keys {
  std::uint64_t index = 0;
  key_bytes cipher_public{};
  key_bytes mask_public{};
};

/// Stage 2's message, one per neighbour: the sender's two shares, sealed for the recipient.
struct sealed_shares {
  std::uint64_t from = 0;
  std::uint64_t to = 0;
  std::vector<std::uint8_t> ciphertext{};
};

/// Stage 3's message: the masked, quantized update.
struct masked_input {
  std::uint64_t index = 0;
  std::vector<std::uint32_t> values{};
  std::vector<std::uint64_t> masked_with{};  ///< the neighbours whose pairwise masks it holds
};

/// Stage 4's request to one survivor: whose self-seed shares and whose mask-key shares it holds
/// and should hand over.
struct unmask_request {
  std::vector<std::uint64_t> self_seed_of{};
  std::vector<std::uint64_t> mask_key_of{};
};

/// Stage 4's answer: the requested shares, each with the learner it belongs to.
struct unmask_response {
  std::uint64_t index = 0;
  std::vector<std::pair<std::uint64_t, share>> self_seed_shares{};
  std::vector<std::pair<std::uint64_t, share>> mask_key_shares{};
};

namespace detail {
inline std::vector<std::uint8_t> context_bytes(const char* label, std::uint64_t round, std::uint64_t a, std::uint64_t b) {
  std::vector<std::uint8_t> out(label, label + std::strlen(label));
  for (std::uint64_t value : {round, a, b})
    for (int byte = 0; byte < 8; ++byte) out.push_back(std::uint8_t(value >> (8 * byte)));
  return out;
}
inline key_bytes derive_key(const key_bytes& agreement, const char* label, std::uint64_t round, std::uint64_t low,
                            std::uint64_t high) {
  const auto bytes = hkdf_sha256(agreement, {}, context_bytes(label, round, low, high), 32);
  key_bytes key{};
  std::copy(bytes.begin(), bytes.end(), key.begin());
  return key;
}
// The seed of the pairwise mask between two learners: the same on both sides.
inline key_bytes pairwise_seed(const key_bytes& agreement, std::uint64_t round, std::uint64_t a, std::uint64_t b) {
  return derive_key(agreement, "flotilla secagg pairwise mask", round, std::min(a, b), std::max(a, b));
}
inline key_bytes share_key(const key_bytes& agreement, std::uint64_t round, std::uint64_t a, std::uint64_t b) {
  return derive_key(agreement, "flotilla secagg shares", round, std::min(a, b), std::max(a, b));
}
// One key serves both directions of a pair, so the nonce names the direction.
inline nonce_bytes share_nonce(std::uint64_t from, std::uint64_t to) {
  nonce_bytes nonce{};
  for (int byte = 0; byte < 6; ++byte) {
    nonce[byte] = std::uint8_t(from >> (8 * byte));
    nonce[6 + byte] = std::uint8_t(to >> (8 * byte));
  }
  return nonce;
}
// A learner's mask toward neighbour j: added toward higher indices, subtracted toward lower.
inline mask_sign pairwise_sign(std::uint64_t own, std::uint64_t neighbour) {
  return own < neighbour ? mask_sign::add : mask_sign::subtract;
}

// The plaintext of a share message: both shares' points and values.
inline std::vector<std::uint8_t> encode_shares(const share& self_seed, const share& mask_key) {
  std::vector<std::uint8_t> out;
  for (const share* held : {&self_seed, &mask_key}) {
    for (int byte = 0; byte < 8; ++byte) out.push_back(std::uint8_t(held->x >> (8 * byte)));
    for (auto value : held->y)
      for (int byte = 0; byte < 8; ++byte) out.push_back(std::uint8_t(value >> (8 * byte)));
  }
  return out;
}
inline std::pair<share, share> decode_shares(std::span<const std::uint8_t> bytes) {
  constexpr std::size_t one = 8 * (1 + pieces_per_secret);
  if (bytes.size() != 2 * one) throw security_error("a share message holds " + std::to_string(bytes.size()) + " bytes, not " +
                                                    std::to_string(2 * one));
  const auto read = [&](std::size_t at) {
    std::uint64_t value = 0;
    for (int byte = 0; byte < 8; ++byte) value |= std::uint64_t(bytes[at + std::size_t(byte)]) << (8 * byte);
    return value;
  };
  std::pair<share, share> out;
  for (int which = 0; which < 2; ++which) {
    share& held = which == 0 ? out.first : out.second;
    const std::size_t base = std::size_t(which) * one;
    held.x = read(base);
    for (std::size_t piece = 0; piece < pieces_per_secret; ++piece) held.y[piece] = read(base + 8 * (piece + 1));
  }
  return out;
}
}  // namespace detail

}  // namespace flotilla::secure_aggregation

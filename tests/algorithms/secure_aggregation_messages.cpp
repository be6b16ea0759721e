#include <flotilla/algorithms/secure_aggregation/messages.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

// The stage payloads: each message round-trips field for field, and every way a hostile payload
// can be wrong (short, long, a count over the reader's bound or over what is left) is refused
// with the field named, before anything that size is allocated.

namespace secagg = flotilla::secure_aggregation;
using flotilla::decode_error;

namespace {
secagg::key_bytes key(std::uint8_t fill) {
  secagg::key_bytes out{};
  out.fill(fill);
  return out;
}
}  // namespace

TEST_CASE("a round setup round-trips and its neighbour list is bounded by the learner") {
  const secagg::round_setup setup{.round = 7, .learners = 10, .index = 3, .neighbours = {1, 2, 4, 9}, .threshold = 2,
                                  .values = 1001, .quantized = {.clipping_range = 4, .quantization_range = 1u << 20, .modulus_bits = 30},
                                  .encoding = {.max_weight = 0, .clip_norm = 0.5, .noise_stddev = 123.25}};
  const auto bytes = secagg::encode(setup);
  CHECK(bytes.size() == 8 * 6 + 8 + 4 + 8 * 3 + 8 + 8 * 4);
  const auto back = secagg::decode_round_setup(bytes, 4);
  CHECK(back.round == 7);
  CHECK(back.learners == 10);
  CHECK(back.index == 3);
  CHECK(back.neighbours == std::vector<std::uint64_t>{1, 2, 4, 9});
  CHECK(back.threshold == 2);
  CHECK(back.values == 1001);
  CHECK(back.quantized.clipping_range == 4);
  CHECK(back.quantized.quantization_range == 1u << 20);
  CHECK(back.quantized.modulus_bits == 30);
  CHECK(back.encoding.max_weight == 0);
  CHECK(back.encoding.clip_norm == 0.5);
  CHECK(back.encoding.noise_stddev == 123.25);
  CHECK_THROWS_WITH_AS((void)secagg::decode_round_setup(bytes, 3),
                       "a secure round's setup: neighbour count is 4; the limit is 3", decode_error);
  auto longer = bytes;
  longer.push_back(0);
  CHECK_THROWS_WITH_AS((void)secagg::decode_round_setup(longer, 4), "a secure round's setup: 1 unexpected bytes at the end",
                       decode_error);
  const std::vector<std::uint8_t> shorter(bytes.begin(), bytes.begin() + 20);
  CHECK_THROWS_WITH_AS((void)secagg::decode_round_setup(shorter, 4),
                       "a secure round's setup is truncated: index needs 8 bytes, 4 remain", decode_error);
}

TEST_CASE("keys, key lists and share lists round-trip; counts beyond the bytes left are refused") {
  const secagg::advertised_keys one{5, key(1), key(2)};
  const auto back = secagg::decode_advertised_keys(secagg::encode(one));
  CHECK(back.index == 5);
  CHECK(back.cipher_public == key(1));
  CHECK(back.mask_public == key(2));

  const std::vector<secagg::advertised_keys> list{one, {6, key(3), key(4)}};
  const auto list_bytes = secagg::encode(std::span<const secagg::advertised_keys>(list));
  const auto list_back = secagg::decode_key_list(list_bytes, 2);
  REQUIRE(list_back.size() == 2);
  CHECK(list_back[1].index == 6);
  CHECK(list_back[1].mask_public == key(4));
  CHECK_THROWS_WITH_AS((void)secagg::decode_key_list(list_bytes, 1), "a list of advertised keys: key count is 2; the limit is 1",
                       decode_error);
  auto lying = list_bytes;
  lying[0] = 3;  // three entries claimed, two present
  CHECK_THROWS_WITH_AS((void)secagg::decode_key_list(lying, 1000),
                       "a list of advertised keys: key count is 3 but only 144 bytes remain", decode_error);

  const std::vector<secagg::sealed_shares> shares{{1, 2, std::vector<std::uint8_t>(secagg::sealed_shares_bytes, 7)}};
  const auto shares_back = secagg::decode_share_list(secagg::encode(std::span<const secagg::sealed_shares>(shares)), 1);
  REQUIRE(shares_back.size() == 1);
  CHECK(shares_back[0].from == 1);
  CHECK(shares_back[0].to == 2);
  CHECK(shares_back[0].ciphertext == shares[0].ciphertext);
  const std::vector<secagg::sealed_shares> odd{{1, 2, std::vector<std::uint8_t>(10, 7)}};
  CHECK_THROWS_AS((void)secagg::encode(std::span<const secagg::sealed_shares>(odd)), flotilla::usage_error);
}

TEST_CASE("a masked input round-trips and must hold the round's number of values") {
  const secagg::masked_input input{4, {0xFFFFFFFFu, 0, 12345678}, {1, 3}};
  const auto bytes = secagg::encode(input);
  const auto back = secagg::decode_masked_input(bytes, 2, 3);
  CHECK(back.index == 4);
  CHECK(back.values == input.values);
  CHECK(back.masked_with == input.masked_with);
  CHECK_THROWS_WITH_AS((void)secagg::decode_masked_input(bytes, 2, 4),
                       "a masked input holds 3 values; the round expects 4", decode_error);
  CHECK_THROWS_WITH_AS((void)secagg::decode_masked_input(bytes, 2, 2), "a masked input: value count is 3; the limit is 2",
                       decode_error);
}

TEST_CASE("unmasking requests and responses round-trip") {
  const secagg::unmask_request request{{1, 2}, {9}};
  const auto request_back = secagg::decode_unmask_request(secagg::encode(request), 3);
  CHECK(request_back.self_seed_of == request.self_seed_of);
  CHECK(request_back.mask_key_of == request.mask_key_of);

  secagg::share held{.x = 3, .y = {1, 2, 3, 4, 5}};
  const secagg::unmask_response response{3, {{1, held}}, {{9, held}}};
  const auto response_back = secagg::decode_unmask_response(secagg::encode(response), 3);
  CHECK(response_back.index == 3);
  REQUIRE(response_back.self_seed_shares.size() == 1);
  CHECK(response_back.self_seed_shares[0].first == 1);
  CHECK(response_back.self_seed_shares[0].second.y == held.y);
  REQUIRE(response_back.mask_key_shares.size() == 1);
  CHECK(response_back.mask_key_shares[0].first == 9);
  CHECK(response_back.mask_key_shares[0].second.x == 3);
}

#pragma once
// An edge aggregator's report of its subtree (subtree_record) as the payload of its fit reply:
// written by the edge, read by its parent's door and fit phase. It comes off the network, so
// every count is checked against the bytes left before anything is allocated, and the nesting
// is bounded.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "flotilla/errors.hpp"
#include "flotilla/round/history.hpp"
#include "flotilla/wire/codec.hpp"

namespace flotilla {

/// The deepest tree of edges an edge report may describe.
inline constexpr std::size_t max_subtree_depth = 16;

namespace detail {
// A list of rejections, as checkpoints' histories and edge reports both hold them.
inline void write_rejections(wire_writer& out, const std::vector<rejection>& rejections) {
  out.write(static_cast<std::uint64_t>(rejections.size()));
  for (const auto& rejected : rejections) {
    out.write(rejected.learner);
    out.write(static_cast<std::uint8_t>(rejected.kind));
    out.write(rejected.round);
    out.write_string(rejected.reason);
  }
}
inline std::vector<rejection> read_rejections(wire_reader& in, std::uint64_t most) {
  std::vector<rejection> rejections(in.read_count(most, 8 + 1 + 8 + 4, "rejection count"));
  for (auto& rejected : rejections) {
    rejected.learner = in.read<learner_id>("learner id");
    rejected.kind = read_kind(in);
    rejected.round = in.read<std::uint64_t>("round");
    rejected.reason = in.read_string("reason");
  }
  return rejections;
}

inline void write_subtree(wire_writer& out, const subtree_record& tree) {
  out.write(tree.edge);
  out.write(static_cast<std::uint64_t>(tree.learners.size()));
  for (const auto id : tree.learners) out.write(id);
  write_rejections(out, tree.rejections);
  out.write(static_cast<std::uint64_t>(tree.below.size()));
  for (const auto& child : tree.below) write_subtree(out, child);
}

inline subtree_record read_subtree(wire_reader& in, std::size_t depth) {
  if (depth > max_subtree_depth)
    throw decode_error("an edge report nests deeper than " + std::to_string(max_subtree_depth) + " levels");
  constexpr std::uint64_t most = std::uint64_t{1} << 24;  // beyond any federation; the bytes bound it first
  subtree_record tree;
  tree.edge = in.read<learner_id>("edge id");
  tree.learners.resize(in.read_count(most, sizeof(learner_id), "learner count"));
  for (auto& id : tree.learners) id = in.read<learner_id>("learner id");
  tree.rejections = read_rejections(in, most);
  tree.below.resize(in.read_count(most, 8 + 3 * 8, "edge count"));
  for (auto& child : tree.below) child = read_subtree(in, depth + 1);
  return tree;
}
}  // namespace detail

/// The payload an edge aggregator's fit reply carries.
[[nodiscard]] inline std::vector<std::uint8_t> encode_subtree(const subtree_record& tree) {
  byte_buffer bytes;
  wire_writer out(bytes);
  detail::write_subtree(out, tree);
  const auto* first = reinterpret_cast<const std::uint8_t*>(bytes.data());
  return {first, first + bytes.size()};
}

/// @throws decode_error naming what is wrong: truncated, a count beyond the bytes left, bytes
///   left over, a reason longer than the limits allow, or nesting beyond max_subtree_depth.
[[nodiscard]] inline subtree_record decode_subtree(std::span<const std::uint8_t> bytes) {
  wire_reader in(std::as_bytes(bytes), decode_limits{});
  auto tree = detail::read_subtree(in, 1);
  in.expect_end();
  return tree;
}

}  // namespace flotilla

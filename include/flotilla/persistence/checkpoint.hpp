#pragma once
// The checkpoint file: a coordinator's snapshot (round number, selection generator, global
// parameters, the rule's state between rounds, history) in Flotilla's wire format (envelope
// content "checkpoint"), replaced atomically so a crash leaves the old checkpoint or the new.
// The coordinator exposes its state; this layer alone owns the format.

#include <cstdint>
#include <filesystem>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "flotilla/detail/config.hpp"
#include "flotilla/concepts/checkpointable.hpp"
#include "flotilla/concepts/wire_codable.hpp"
#include "flotilla/detail/files.hpp"
#include "flotilla/errors.hpp"
#include "flotilla/round/history.hpp"
#include "flotilla/round/snapshot.hpp"
#include "flotilla/round/subtree.hpp"
#include "flotilla/wire/codec.hpp"

namespace flotilla {

/// Bounds for reading a checkpoint: its own file, but checked like any other input.
inline constexpr decode_limits checkpoint_limits{.max_scalars = std::uint64_t{1} << 34, .max_tensors = 1u << 20,
                                                 .max_rank = 8, .max_string = 1u << 24, .max_entries = 1u << 24};

namespace detail {

FLOTILLA_DECL void write_ids(wire_writer& out, const std::vector<learner_id>& ids);
FLOTILLA_DECL std::vector<learner_id> read_ids(wire_reader& in);

FLOTILLA_DECL void write_history(wire_writer& out, const history& past);

FLOTILLA_DECL history read_history(wire_reader& in);

// The edge reports of each round (round_record::edges), after everything else and flagged:
// checkpoints written before they existed have neither, and still load.
FLOTILLA_DECL void write_edges(wire_writer& out, const history& past);
FLOTILLA_DECL void read_edges(wire_reader& in, history& past);

}  // namespace detail

/// A coordinator whose snapshot can be written: its parameters have a wire codec.
template <class C>
concept Checkpointable = WireCodable<typename C::parameters_type> && requires(const C& c) { c.snapshot(); };

/// Writes `coordinator`'s state to `path`, atomically.
/// @throws file_error naming the file if it cannot be written.
template <class C>
  requires Checkpointable<C>
void save_checkpoint(const C& coordinator, const std::filesystem::path& path) {
  using P = typename C::parameters_type;
  using Rule = typename C::rule_type;
  const auto state = coordinator.snapshot();
  byte_buffer bytes;
  wire_writer out(bytes);
  detail::write_envelope(out, wire_content::checkpoint);
  out.write(state.round);
  std::ostringstream engine;
  engine << state.engine;
  out.write_string(engine.str());
  wire_codec<P>::write(out, state.global);
  detail::write_history(out, state.history);
  // Bit 0: the rule's state follows; bit 1: the rounds' edge reports end the file (Flotilla 0.7).
  out.write(static_cast<std::uint8_t>((CheckpointableRule<Rule> ? 1 : 0) | 2));
  if constexpr (CheckpointableRule<Rule>) state.rule.save_state(out);
  detail::write_edges(out, state.history);
  write_file_atomically(path, bytes);
}

/// Continues `coordinator` from a checkpoint written by save_checkpoint with the same kind of
/// rule and model. On any error nothing changes.
/// @throws file_error if the file cannot be read, decode_error if it is not a valid checkpoint
/// of this format version, layout_error if its model's layout differs from the coordinator's.
template <class C>
  requires Checkpointable<C> && std::copy_constructible<typename C::rule_type>
void load_checkpoint(C& coordinator, const std::filesystem::path& path) {
  using P = typename C::parameters_type;
  using Rule = typename C::rule_type;
  const auto bytes = read_file<byte_buffer>(path);
  coordinator_state<P, Rule> state{.rule = coordinator.rule()};
  try {
    detail::decode_message(bytes, checkpoint_limits, wire_content::checkpoint, [&](wire_reader& in) {
      state.round = in.read<std::uint64_t>("round");
      std::istringstream engine_text(in.read_string("selection generator"));
      if (!(engine_text >> state.engine)) throw decode_error("the selection generator's state does not parse");
      state.global = std::make_shared<const P>(wire_codec<P>::read(in));
      state.history = detail::read_history(in);
      const auto sections = in.read<std::uint8_t>("section flags");
      if (sections > 3) throw decode_error("unknown section flags " + std::to_string(sections));
      const bool has_rule_state = (sections & 1) != 0;
      if (has_rule_state != CheckpointableRule<Rule>)
        throw decode_error(has_rule_state ? "it holds the state of a rule this coordinator's rule does not keep"
                                          : "it holds no state for this coordinator's rule");
      if constexpr (CheckpointableRule<Rule>) state.rule.load_state(in);
      if ((sections & 2) != 0) detail::read_edges(in, state.history);  // absent before Flotilla 0.7
      in.expect_end();
      return 0;
    });
  } catch (const decode_error& error) {
    throw decode_error("checkpoint " + path.string() + ": " + error.what());
  }
  require_same_layout(*state.global, coordinator.global(), "the checkpoint's model", "this coordinator's model");
  coordinator.restore(std::move(state));
}

/// Saves `coordinator`'s state to `path` after every round from now on. With a parameter type
/// that has no wire codec this does not compile: a checkpoint that cannot be written is never
/// silently skipped.
template <class C>
  requires Checkpointable<C>
void checkpoint_every_round(C& coordinator, std::filesystem::path path) {
  coordinator.on_round([&coordinator, path = std::move(path)](const round_record&) { save_checkpoint(coordinator, path); });
}

#if FLOTILLA_HEADER_DEFINITIONS
namespace detail {
FLOTILLA_DECL void write_ids(wire_writer& out, const std::vector<learner_id>& ids) {
  out.write(static_cast<std::uint64_t>(ids.size()));
  for (auto id : ids) out.write(id);
}

FLOTILLA_DECL std::vector<learner_id> read_ids(wire_reader& in) {
  std::vector<learner_id> ids(in.read_count(in.limits().max_entries, sizeof(learner_id), "learner count"));
  for (auto& id : ids) id = in.read<learner_id>("learner id");
  return ids;
}

FLOTILLA_DECL void write_history(wire_writer& out, const history& past) {
  out.write_string(past.stop_reason);
  out.write(static_cast<std::uint64_t>(past.rounds.size()));
  for (const auto& r : past.rounds) {
    out.write(r.round);
    out.write(static_cast<std::uint8_t>(r.status));
    out.write_string(r.note);
    write_ids(out, r.selected);
    write_ids(out, r.participants);
    write_ids(out, r.evaluated);
    write_rejections(out, r.rejections);
    out.write(r.examples);
    write_map(out, r.fit_metrics);
    write_map(out, r.federated_metrics);
    write_map(out, r.central_metrics);
    for (double seconds : {r.fit_seconds, r.evaluate_seconds, r.round_seconds, r.elapsed_seconds}) out.write(seconds);
  }
}

FLOTILLA_DECL history read_history(wire_reader& in) {
  history past;
  past.stop_reason = in.read_string("stop reason");
  // A round takes at least its fixed fields: 8 + 1 + 4 + 3 * 8 + 8 + 8 + 3 * 8 + 4 * 8 bytes.
  past.rounds.resize(in.read_count(in.limits().max_entries, 109, "round count"));
  for (auto& r : past.rounds) {
    r.round = in.read<std::uint64_t>("round");
    const auto status = in.read<std::uint8_t>("round status");
    if (status > static_cast<std::uint8_t>(round_status::discarded))
      throw decode_error("unknown round status " + std::to_string(status));
    r.status = static_cast<round_status>(status);
    r.note = in.read_string("round note");
    r.selected = read_ids(in);
    r.participants = read_ids(in);
    r.evaluated = read_ids(in);
    r.rejections = read_rejections(in, in.limits().max_entries);
    r.examples = in.read<std::int64_t>("examples");
    r.fit_metrics = read_map(in, "fit metric count");
    r.federated_metrics = read_map(in, "federated metric count");
    r.central_metrics = read_map(in, "central metric count");
    for (double* seconds : {&r.fit_seconds, &r.evaluate_seconds, &r.round_seconds, &r.elapsed_seconds})
      *seconds = in.read<double>("duration");
  }
  return past;
}

FLOTILLA_DECL void write_edges(wire_writer& out, const history& past) {
  std::uint64_t with_edges = 0;
  for (const auto& r : past.rounds) with_edges += r.edges.empty() ? 0 : 1;
  out.write(with_edges);
  for (std::size_t at = 0; at < past.rounds.size(); ++at) {
    const auto& edges = past.rounds[at].edges;
    if (edges.empty()) continue;
    out.write(static_cast<std::uint64_t>(at));
    out.write(static_cast<std::uint64_t>(edges.size()));
    for (const auto& tree : edges) write_subtree(out, tree);
  }
}

FLOTILLA_DECL void read_edges(wire_reader& in, history& past) {
  const auto rounds = in.read_count(past.rounds.size(), 16, "rounds with edge reports");
  for (std::uint64_t i = 0; i < rounds; ++i) {
    const auto at = in.read<std::uint64_t>("round index");
    if (at >= past.rounds.size()) throw decode_error("edge reports for round index " + std::to_string(at) + " of " +
                                                     std::to_string(past.rounds.size()));
    auto& edges = past.rounds[at].edges;
    edges.resize(in.read_count(in.limits().max_entries, 8 + 3 * 8, "edge report count"));
    for (auto& tree : edges) tree = read_subtree(in, 1);
  }
}
}  // namespace detail
#endif  // FLOTILLA_HEADER_DEFINITIONS

}  // namespace flotilla

#pragma once
// A run's history as CSV (one row per round) or JSON (every field), for spreadsheets, plots and
// other tools.

#include <set>
#include <string>
#include <vector>

#include "flotilla/detail/config.hpp"
#include "flotilla/detail/text.hpp"
#include "flotilla/round/history.hpp"

namespace flotilla {

/// The history as CSV: one row per round. Metric columns are the union of all rounds' metric
/// names, prefixed by their source, left empty where a round has no value.
[[nodiscard]] FLOTILLA_DECL std::string to_csv(const history& past);
/// The history as JSON: {"stop_reason", "rounds": [{...every field of round_record}]}.
[[nodiscard]] FLOTILLA_DECL std::string to_json(const history& past);

#if FLOTILLA_HEADER_DEFINITIONS

FLOTILLA_DECL std::string to_csv(const history& past) {
  std::set<std::string> columns;
  for (const auto& r : past.rounds) {
    for (const auto& [key, _] : r.fit_metrics) columns.insert("fit." + key);
    for (const auto& [key, _] : r.federated_metrics) columns.insert("federated." + key);
    for (const auto& [key, _] : r.central_metrics) columns.insert("central." + key);
  }
  std::string out =
      "round,status,selected,participants,evaluated,rejected,examples,fit_seconds,evaluate_seconds,"
      "round_seconds,elapsed_seconds";
  for (const auto& column : columns) out += "," + detail::csv_field(column);
  out += ",rejections\n";
  for (const auto& r : past.rounds) {
    out += std::to_string(r.round) + "," + to_string(r.status) + "," + std::to_string(r.selected.size()) + "," +
           std::to_string(r.participants.size()) + "," + std::to_string(r.evaluated.size()) + "," +
           std::to_string(r.rejections.size()) + "," + std::to_string(r.examples) + "," +
           detail::number(r.fit_seconds) + "," + detail::number(r.evaluate_seconds) + "," +
           detail::number(r.round_seconds) + "," + detail::number(r.elapsed_seconds);
    for (const auto& column : columns) {
      out += ",";
      if (auto value = r.metric(column)) out += detail::number(*value);
    }
    std::string reasons;
    for (const auto& rejected : r.rejections) {
      if (!reasons.empty()) reasons += "; ";
      reasons += "learner " + std::to_string(rejected.learner) + " " + to_string(rejected.kind) + ": " +
                 rejected.reason;
    }
    out += "," + detail::csv_field(reasons) + "\n";
  }
  return out;
}

FLOTILLA_DECL std::string to_json(const history& past) {
  const auto metrics_json = [](const metrics& values) {
    std::string out = "{";
    for (const auto& [key, value] : values) {
      if (out.size() > 1) out += ",";
      out += detail::json_string(key) + ":" + detail::json_number(value);
    }
    return out + "}";
  };
  const auto ids_json = [](const std::vector<learner_id>& ids) { return "[" + detail::join_ids(ids, ',') + "]"; };
  const auto rejections_json = [](const std::vector<rejection>& rejections) {
    std::string out = "[";
    for (std::size_t j = 0; j < rejections.size(); ++j) {
      const auto& rejected = rejections[j];
      if (j) out += ",";
      out += "{\"learner\":" + std::to_string(rejected.learner) + ",\"kind\":" +
             detail::json_string(to_string(rejected.kind)) + ",\"round\":" + std::to_string(rejected.round) +
             ",\"reason\":" + detail::json_string(rejected.reason) + "}";
    }
    return out + "]";
  };
  // An edge's subtree, and the subtrees below it.
  const auto edges_json = [&](const std::vector<subtree_record>& edges) {
    const auto one = [&](const auto& self, const subtree_record& tree) -> std::string {
      std::string out = "{\"edge\":" + std::to_string(tree.edge) + ",\"learners\":" + ids_json(tree.learners) +
                        ",\"rejections\":" + rejections_json(tree.rejections) + ",\"below\":[";
      for (std::size_t j = 0; j < tree.below.size(); ++j) {
        if (j) out += ",";
        out += self(self, tree.below[j]);
      }
      return out + "]}";
    };
    std::string out = "[";
    for (std::size_t j = 0; j < edges.size(); ++j) {
      if (j) out += ",";
      out += one(one, edges[j]);
    }
    return out + "]";
  };
  std::string out = "{\"stop_reason\":" + detail::json_string(past.stop_reason) + ",\"rounds\":[";
  for (std::size_t i = 0; i < past.rounds.size(); ++i) {
    const auto& r = past.rounds[i];
    if (i) out += ",";
    out += "{\"round\":" + std::to_string(r.round) + ",\"status\":" + detail::json_string(to_string(r.status)) +
           ",\"note\":" + detail::json_string(r.note) + ",\"selected\":" + ids_json(r.selected) +
           ",\"participants\":" + ids_json(r.participants) + ",\"evaluated\":" + ids_json(r.evaluated) +
           ",\"examples\":" + std::to_string(r.examples) + ",\"rejections\":" + rejections_json(r.rejections);
    if (!r.edges.empty()) out += ",\"edges\":" + edges_json(r.edges);
    out += ",\"fit_metrics\":" + metrics_json(r.fit_metrics) +
           ",\"federated_metrics\":" + metrics_json(r.federated_metrics) +
           ",\"central_metrics\":" + metrics_json(r.central_metrics) +
           ",\"fit_seconds\":" + detail::json_number(r.fit_seconds) +
           ",\"evaluate_seconds\":" + detail::json_number(r.evaluate_seconds) +
           ",\"round_seconds\":" + detail::json_number(r.round_seconds) +
           ",\"elapsed_seconds\":" + detail::json_number(r.elapsed_seconds) + "}";
  }
  return out + "]}";
}

#endif  // FLOTILLA_HEADER_DEFINITIONS

}  // namespace flotilla

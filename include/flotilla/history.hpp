#pragma once
// The record of a run: one entry per round with who took part, every failure and rejection with
// its reason, aggregated metrics and durations; exported as CSV or JSON.

#include <charconv>
#include <cstdio>   // std::snprintf for JSON escapes
#include <cmath>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "flotilla/concepts/model.hpp"
#include "flotilla/messages.hpp"

namespace flotilla {

/// A task that did not contribute: the learner failed, or its reply was rejected at the door.
struct rejection {
  learner_id learner = 0;
  task_kind kind = task_kind::fit;
  std::uint64_t round = 0;  ///< the round the message belonged to (may be an earlier one)
  std::string reason;
};

enum class round_status : std::uint8_t {
  aggregated,  ///< a quorum replied; the global parameters were replaced
  discarded,   ///< the quorum was not met; the global parameters were kept
};

[[nodiscard]] inline const char* to_string(round_status status) {
  return status == round_status::aggregated ? "aggregated" : "discarded";
}

struct round_record {
  std::uint64_t round = 0;
  round_status status = round_status::discarded;
  std::string note;                        ///< why a round was discarded; empty otherwise
  std::vector<learner_id> selected;        ///< asked to fit
  std::vector<learner_id> participants;    ///< whose fit replies were aggregated
  std::vector<learner_id> evaluated;       ///< whose evaluation replies were used
  std::vector<rejection> rejections;       ///< failures and rejected replies, with reasons
  std::int64_t examples = 0;               ///< examples behind the aggregated update
  metrics fit_metrics;                     ///< learners' training metrics, weighted by examples
  metrics federated_metrics;               ///< learners' evaluation metrics, weighted by examples
  metrics central_metrics;                 ///< the coordinator's own evaluation
  double fit_seconds = 0;
  double evaluate_seconds = 0;
  double round_seconds = 0;
  double elapsed_seconds = 0;              ///< since the run started, at the end of this round

  /// A metric by name. "central.x", "federated.x" and "fit.x" name one source; a bare "x" is
  /// looked up in central, then federated, then fit metrics.
  [[nodiscard]] std::optional<double> metric(std::string_view name) const {
    const auto from = [](const metrics& source, std::string_view key) -> std::optional<double> {
      auto found = source.find(std::string(key));
      return found == source.end() ? std::nullopt : std::optional<double>(found->second);
    };
    for (auto [prefix, source] : {std::pair{std::string_view("central."), &central_metrics},
                                  std::pair{std::string_view("federated."), &federated_metrics},
                                  std::pair{std::string_view("fit."), &fit_metrics}})
      if (name.starts_with(prefix)) return from(*source, name.substr(prefix.size()));
    if (auto value = from(central_metrics, name)) return value;
    if (auto value = from(federated_metrics, name)) return value;
    return from(fit_metrics, name);
  }
};

namespace detail {

inline std::string number(double value) {
  if (!std::isfinite(value)) return std::isnan(value) ? "nan" : (value > 0 ? "inf" : "-inf");
  char buffer[64];
  auto end = std::to_chars(buffer, buffer + sizeof buffer, value).ptr;
  return std::string(buffer, end);
}

inline std::string json_string(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char escaped[8];
          std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
          out += escaped;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

inline std::string json_number(double value) { return std::isfinite(value) ? number(value) : "null"; }

inline std::string csv_field(std::string_view text) {
  if (text.find_first_of(",\"\n") == std::string_view::npos) return std::string(text);
  std::string out = "\"";
  for (char c : text) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

inline std::string join_ids(const std::vector<learner_id>& ids, char separator) {
  std::string out;
  for (auto id : ids) {
    if (!out.empty()) out += separator;
    out += std::to_string(id);
  }
  return out;
}

}  // namespace detail

/// Every round of a run and the reason it stopped.
struct history {
  std::vector<round_record> rounds;
  std::string stop_reason;  ///< the stopping criterion that ended the run

  /// One row per round; metric columns are the union of all rounds' metric names, prefixed by
  /// their source, left empty where a round has no value.
  [[nodiscard]] std::string to_csv() const {
    std::set<std::string> columns;
    for (const auto& r : rounds) {
      for (const auto& [key, _] : r.fit_metrics) columns.insert("fit." + key);
      for (const auto& [key, _] : r.federated_metrics) columns.insert("federated." + key);
      for (const auto& [key, _] : r.central_metrics) columns.insert("central." + key);
    }
    std::string out =
        "round,status,selected,participants,evaluated,rejected,examples,fit_seconds,evaluate_seconds,"
        "round_seconds,elapsed_seconds";
    for (const auto& column : columns) out += "," + detail::csv_field(column);
    out += ",rejections\n";
    for (const auto& r : rounds) {
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

  [[nodiscard]] std::string to_json() const {
    const auto metrics_json = [](const metrics& values) {
      std::string out = "{";
      for (const auto& [key, value] : values) {
        if (out.size() > 1) out += ",";
        out += detail::json_string(key) + ":" + detail::json_number(value);
      }
      return out + "}";
    };
    const auto ids_json = [](const std::vector<learner_id>& ids) { return "[" + detail::join_ids(ids, ',') + "]"; };
    std::string out = "{\"stop_reason\":" + detail::json_string(stop_reason) + ",\"rounds\":[";
    for (std::size_t i = 0; i < rounds.size(); ++i) {
      const auto& r = rounds[i];
      if (i) out += ",";
      out += "{\"round\":" + std::to_string(r.round) + ",\"status\":" + detail::json_string(to_string(r.status)) +
             ",\"note\":" + detail::json_string(r.note) + ",\"selected\":" + ids_json(r.selected) +
             ",\"participants\":" + ids_json(r.participants) + ",\"evaluated\":" + ids_json(r.evaluated) +
             ",\"examples\":" + std::to_string(r.examples) + ",\"rejections\":[";
      for (std::size_t j = 0; j < r.rejections.size(); ++j) {
        const auto& rejected = r.rejections[j];
        if (j) out += ",";
        out += "{\"learner\":" + std::to_string(rejected.learner) + ",\"kind\":" +
               detail::json_string(to_string(rejected.kind)) + ",\"round\":" + std::to_string(rejected.round) +
               ",\"reason\":" + detail::json_string(rejected.reason) + "}";
      }
      out += "],\"fit_metrics\":" + metrics_json(r.fit_metrics) +
             ",\"federated_metrics\":" + metrics_json(r.federated_metrics) +
             ",\"central_metrics\":" + metrics_json(r.central_metrics) +
             ",\"fit_seconds\":" + detail::json_number(r.fit_seconds) +
             ",\"evaluate_seconds\":" + detail::json_number(r.evaluate_seconds) +
             ",\"round_seconds\":" + detail::json_number(r.round_seconds) +
             ",\"elapsed_seconds\":" + detail::json_number(r.elapsed_seconds) + "}";
    }
    return out + "]}";
  }
};

}  // namespace flotilla

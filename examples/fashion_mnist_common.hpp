#pragma once
// What the Fashion-MNIST examples share: flags, the model, loading the data, progress lines.

#include <flotilla/data/fashion_mnist.hpp>
#include <flotilla/flotilla.hpp>
#include <flotilla/models.hpp>
#include <flotilla/data/partition.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <string_view>

namespace example {

using model = flotilla::mlp<float>;
using data = model::data_type;

/// "--name value" pairs; exits with status 2 on a flag not in `known`.
inline std::map<std::string, std::string> parse_flags(int argc, char** argv, std::map<std::string, std::string> known) {
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (!flag.starts_with("--") || !known.contains(flag.substr(2)) || i + 1 >= argc) {
      std::fprintf(stderr, "unknown flag or missing value: %s\nflags (defaults):", argv[i]);
      for (const auto& [name, value] : known) std::fprintf(stderr, " --%s (%s)", name.c_str(), value.c_str());
      std::fprintf(stderr, "\n");
      std::exit(2);
    }
    known[flag.substr(2)] = argv[i + 1];
  }
  return known;
}

/// Exits with status 2 and `message` unless `holds`: for flag combinations that cannot work.
inline void require_flags(bool holds, const char* message) {
  if (holds) return;
  std::fprintf(stderr, "error: %s\n", message);
  std::exit(2);
}

/// A secret from a file (first line) or, when no file is named, from an environment variable;
/// never from the command line, where other users of the machine can read it.
inline std::string read_secret(const std::string& file, const char* variable) {
  if (!file.empty()) {
    std::ifstream in(file);
    std::string line;
    require_flags(in && std::getline(in, line), "cannot read the token file");
    return line;
  }
  const char* value = std::getenv(variable);
  return value ? value : "";
}

/// Learners' tokens, "1=secret,2=other" or one "id=token" a line (a file or FLOTILLA_TOKENS).
inline std::map<flotilla::learner_id, std::string> parse_tokens(const std::string& text) {
  std::map<flotilla::learner_id, std::string> tokens;
  std::string entry;
  for (std::stringstream in(text); std::getline(in, entry, text.find('\n') != std::string::npos ? '\n' : ',');)
    if (auto equals = entry.find('='); equals != std::string::npos)
      tokens[std::stoull(entry.substr(0, equals))] = entry.substr(equals + 1);
  return tokens;
}

/// The federation's codecs from --to-learners and --to-aggregator; exits with status 2 and the
/// reason for a codec that does not exist or cannot go that way.
inline flotilla::compression::options parse_codecs(const std::string& to_learners, const std::string& to_aggregator) {
  try {
    const flotilla::compression::options codecs{flotilla::compression::parse_codec(to_learners),
                                                 flotilla::compression::parse_codec(to_aggregator)};
    codecs.validate();
    return codecs;
  } catch (const flotilla::configuration_error& error) {
    std::fprintf(stderr, "error: %s\n", error.what());
    std::exit(2);
  }
}

/// 784 pixels -> 128 ReLU units -> 10 classes; one local epoch of minibatch SGD per round. Every
/// process builds the same initial model from the same seed.
inline model make_model() { return model({784, 128, 10}, {.learning_rate = 0.1, .epochs = 1, .batch_size = 32}, 1); }

/// Loads a split, or exits with status 1 and a message naming the package to install.
inline data load_or_exit(flotilla::fashion_mnist_split split, const std::string& directory) {
  try {
    return flotilla::load_fashion_mnist(split, directory.empty() ? flotilla::fashion_mnist_default_directory
                                                                 : std::filesystem::path(directory));
  } catch (const flotilla::data_error& error) {
    std::fprintf(stderr, "error: %s\n", error.what());
    std::exit(1);
  }
}

/// The training data of learner `index` of `learners`: every process computes the same IID split.
inline data learner_share(const data& train, std::size_t index, std::size_t learners) {
  return train.subset(flotilla::partition_iid(train.size(), learners, /*seed=*/7).at(index));
}

inline void print_round(const flotilla::round_record& r) {
  std::printf("round %2llu: participants=%zu/%zu loss=%.4f test_accuracy=%.4f seconds=%.1f%s%s\n",
              static_cast<unsigned long long>(r.round), r.participants.size(), r.selected.size(),
              r.metric("fit.loss").value_or(NAN), r.metric("central.accuracy").value_or(NAN), r.round_seconds,
              r.note.empty() ? "" : " ", r.note.c_str());
  std::fflush(stdout);
}

inline void print_final(const flotilla::history& history) {
  const auto accuracy = history.rounds.empty() ? 0.0 : history.rounds.back().metric("central.accuracy").value_or(0.0);
  std::printf("stopped: %s\n", history.stop_reason.c_str());
  std::printf("final: rounds=%zu test_accuracy=%.4f\n", history.rounds.size(), accuracy);
}

}  // namespace example

// A privacy calculator for the subsampled Gaussian mechanism (the accountant of
// flotilla/algorithms/privacy/accountant.hpp):
//   privacy_budget --noise-multiplier S --sampling-rate Q --rounds T --delta D   prints epsilon=<e>
//   privacy_budget --epsilon E --sampling-rate Q --rounds T --delta D            prints noise_multiplier=<s>
// Add --sampling fixed for a fixed-size draw (Poisson sampling is the default). Values are
// rounded up to six significant digits. Bad or missing arguments: a one-line error and exit
// status 2.
#include <flotilla/algorithms/privacy/accountant.hpp>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>

namespace {

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "privacy_budget: %s (usage: --noise-multiplier S | --epsilon E, with --sampling-rate Q --rounds T "
                       "--delta D [--sampling poisson|fixed])\n",
               message.c_str());
  std::exit(2);
}

double number(const std::map<std::string, std::string>& flags, const std::string& name) {
  const auto found = flags.find(name);
  if (found == flags.end()) usage_error("missing --" + name);
  const std::string& text = found->second;
  double value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || !std::isfinite(value))
    usage_error("--" + name + " needs a number; got '" + text + "'");
  return value;
}

// Six significant digits, rounded up: a printed epsilon never understates what was spent, and a
// printed noise multiplier never gives less noise than the target needs.
std::string rounded_up(double value) {
  const double scale = std::pow(10.0, 5 - std::floor(std::log10(value)));
  char text[64];
  std::snprintf(text, sizeof text, "%.6g", std::ceil(value * scale - 1e-9) / scale);
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> flags;
  for (int i = 1; i < argc; i += 2) {
    const std::string_view flag = argv[i];
    static constexpr std::string_view known[] = {"--noise-multiplier", "--epsilon", "--sampling-rate", "--rounds", "--delta",
                                                 "--sampling"};
    bool recognised = false;
    for (auto name : known) recognised = recognised || flag == name;
    if (!recognised) usage_error("unknown argument '" + std::string(flag) + "'");
    if (i + 1 >= argc) usage_error(std::string(flag) + " needs a value");
    if (!flags.emplace(flag.substr(2), argv[i + 1]).second) usage_error(std::string(flag) + " given twice");
  }
  const bool has_sigma = flags.contains("noise-multiplier"), has_epsilon = flags.contains("epsilon");
  if (has_sigma == has_epsilon) usage_error("give exactly one of --noise-multiplier and --epsilon");
  auto draw = flotilla::sampling::poisson;
  if (const auto found = flags.find("sampling"); found != flags.end()) {
    if (found->second == "fixed") draw = flotilla::sampling::fixed_size;
    else if (found->second != "poisson") usage_error("--sampling is poisson or fixed; got '" + found->second + "'");
  }
  const double rate = number(flags, "sampling-rate"), delta = number(flags, "delta"), rounds = number(flags, "rounds");
  if (!(rounds >= 1) || rounds != std::floor(rounds) || rounds > 1e12)
    usage_error("--rounds needs a whole number of rounds, at least 1; got '" + flags["rounds"] + "'");
  try {
    if (has_sigma) {
      const flotilla::privacy::accountant accountant(number(flags, "noise-multiplier"), rate, delta, draw);
      std::printf("epsilon=%s\n", rounded_up(accountant.epsilon(static_cast<std::uint64_t>(rounds))).c_str());
    } else {
      const double sigma = flotilla::privacy::noise_multiplier_for(number(flags, "epsilon"), delta, rate,
                                                                   static_cast<std::uint64_t>(rounds), draw);
      std::printf("noise_multiplier=%s\n", rounded_up(sigma).c_str());
    }
  } catch (const flotilla::configuration_error& error) {
    usage_error(error.what());
  }
}

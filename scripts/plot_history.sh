#!/usr/bin/env bash
# Plots a federation's history (flotilla::to_csv) as an SVG of loss and accuracy per round:
#   ./scripts/plot_history.sh history.csv history.svg
# Plots whichever of fit.loss, federated.loss, central.loss (left) and federated.accuracy,
# central.accuracy (right) the history has. Needs gnuplot (installed when missing).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
flotilla_install_packages gnuplot-nox
csv="$1"
svg="$2"
header="$(head -1 "$csv")"
has() { [[ ",$header," == *",$1,"* ]]; }
series() {  # <title suffix> <columns...>: a gnuplot plot list of the columns the history has
  local list="" column
  for column in "$@"; do
    has "$column" && list+="${list:+, }'$csv' using 'round':'$column' with linespoints lw 2 title '$column'"
  done
  echo "${list:-NaN notitle}"
}
gnuplot <<PLOT
set terminal svg size 900,360 dynamic noenhanced font "sans,12"
set output "$svg"
set datafile separator ","
set multiplot layout 1,2 title "$(basename "$csv")"
set xlabel "round"
set key top right
set title "loss"
plot $(series fit.loss federated.loss central.loss)
set title "accuracy"
set key bottom right
set yrange [*:*]
plot $(series federated.accuracy central.accuracy)
unset multiplot
PLOT
echo "plot: $svg"

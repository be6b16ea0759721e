#!/usr/bin/env bash
# Builds the API reference from the headers' doc comments with Doxygen into build/docs/html.
# Any Doxygen warning fails it (scripts/docs/Doxyfile: WARN_AS_ERROR), so the reference cannot rot.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
flotilla_install_packages doxygen
out="$FLOTILLA_ROOT/build/docs"
mkdir -p "$out"
cd "$FLOTILLA_ROOT"
(cat scripts/docs/Doxyfile; echo "OUTPUT_DIRECTORY = $out") | doxygen - 2>"$out/warnings.log" ||
  { cat "$out/warnings.log"; echo "docs: Doxygen warnings (above) are errors"; exit 1; }
echo "docs: API reference in $out/html/index.html"

#!/usr/bin/env bash
# Federated MLP on Fashion-MNIST with 10 in-memory learners: installs what is missing, builds in
# Release and runs examples/03_fashion_mnist.cpp. Extra arguments go to the demo
# (e.g. --rounds 40 --learners 20).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

build="$FLOTILLA_ROOT/build/release"
cmake -S "$FLOTILLA_ROOT" -B "$build" -DCMAKE_BUILD_TYPE=Release -DFLOTILLA_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" --target 03_fashion_mnist -j "$FLOTILLA_JOBS"
exec "$build/examples/03_fashion_mnist" "$@"

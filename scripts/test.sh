#!/usr/bin/env bash
# Builds and runs every test twice: an optimized build with assertions, then the same suite under
# AddressSanitizer + UBSan. Warnings are errors in both. Installs what is missing first.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

run_suite() {  # <build dir> <ctest exclusion regex> <cmake options...>
  local build="$1" exclude="$2"
  shift 2
  echo "== $(basename "$build"): configure and build"
  cmake -S "$FLOTILLA_ROOT" -B "$build" "$@" >/dev/null
  cmake --build "$build" -j "$FLOTILLA_JOBS"
  echo "== $(basename "$build"): test"
  ctest --test-dir "$build" -j "$FLOTILLA_JOBS" --output-on-failure --timeout 600 ${exclude:+-E "$exclude"}
}

# Optimized with assertions on (no NDEBUG): Eigen checks dimensions and indices.
run_suite "$FLOTILLA_ROOT/build/tests" "" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g"
# Sanitizers; the CMake packaging and compile-fail tests ran above and gain nothing from them.
run_suite "$FLOTILLA_ROOT/build/sanitize" "^(cmake_|compile_fail_)" -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" -DFLOTILLA_SANITIZE=ON
echo "all test suites passed"

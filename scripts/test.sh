#!/usr/bin/env bash
# Builds and runs every test twice, with both supported compilers: an optimized GCC build with
# assertions, then the same suite built by Clang under AddressSanitizer + UBSan, so a construct
# either compiler refuses cannot land; then fuzzes the TCP frame decoders for
# FLOTILLA_FUZZ_SECONDS (60) and a whole server transport over loopback for
# FLOTILLA_SERVER_FUZZ_SECONDS (30) with clang's libFuzzer. Warnings are errors throughout.
# First the API reference (scripts/docs.sh), whose Doxygen warnings are errors. Installs what is
# missing first.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
flotilla_install_packages clang libclang-rt-14-dev
"$FLOTILLA_ROOT/scripts/docs.sh"

run_suite() {  # <build dir> <ctest exclusion regex> <cmake options...>
  local build="$1" exclude="$2"
  shift 2
  echo "== $(basename "$build"): configure and build"
  cmake -S "$FLOTILLA_ROOT" -B "$build" "$@" >/dev/null
  cmake --build "$build" -j "$FLOTILLA_JOBS"
  echo "== $(basename "$build"): test"
  ctest --test-dir "$build" -j "$FLOTILLA_JOBS" --output-on-failure --timeout 600 ${exclude:+-E "$exclude"}
}

# GCC, optimized with assertions on (no NDEBUG): Eigen checks dimensions and indices. The
# compiled mode is on so that the installed package holds flotilla::compiled for its consumer test.
run_suite "$FLOTILLA_ROOT/build/tests" "" -DCMAKE_CXX_COMPILER=g++ -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFLOTILLA_SEPARATE_COMPILATION=ON \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g"
# Clang with sanitizers; the CMake packaging tests ran above and gain nothing from them. The
# compile-fail tests run again: their expected diagnostics must hold for both compilers. LibTorch
# is not built with the sanitizers, and its adapter's tensors are read and written inside it, so
# flotilla::torch is tested in the GCC pass only.
run_suite "$FLOTILLA_ROOT/build/sanitize" "^cmake_" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" -DFLOTILLA_SANITIZE=ON -DFLOTILLA_TORCH=OFF
# Fuzzing: the committed corpora seed it; new inputs go to scratch directories, not the tree.
echo "== fuzz: build and run the frame decoder fuzzer, then the whole-server fuzzer"
fuzz="$FLOTILLA_ROOT/build/fuzz"
cmake -S "$FLOTILLA_ROOT" -B "$fuzz" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DFLOTILLA_FUZZ=ON -DFLOTILLA_BUILD_TESTS=OFF -DFLOTILLA_BUILD_EXAMPLES=OFF -DFLOTILLA_INSTALL=OFF -DFLOTILLA_TORCH=OFF >/dev/null
cmake --build "$fuzz" --target frame_fuzzer server_fuzzer -j "$FLOTILLA_JOBS"
run_fuzzer() {  # <name> <seconds> <corpus>
  rm -rf "$fuzz/$1-units" && mkdir -p "$fuzz/$1-units"
  LSAN_OPTIONS="suppressions=$FLOTILLA_ROOT/tests/fuzz/openssl.supp" \
    "$fuzz/tests/fuzz/$1" -max_total_time="$2" -print_final_stats=1 "$fuzz/$1-units" "$3" 2>"$fuzz/$1.log" ||
    { tail -40 "$fuzz/$1.log"; exit 1; }
  grep -E "^(Done|stat::number_of_executed_units)" "$fuzz/$1.log"
}
run_fuzzer frame_fuzzer "${FLOTILLA_FUZZ_SECONDS:-60}" "$FLOTILLA_ROOT/tests/fuzz/corpus"
run_fuzzer server_fuzzer "${FLOTILLA_SERVER_FUZZ_SECONDS:-30}" "$FLOTILLA_ROOT/tests/fuzz/server_corpus"
echo "all test suites passed"

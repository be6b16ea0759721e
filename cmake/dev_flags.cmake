# Warnings as errors and optional sanitizers for Flotilla's own tests, examples and benchmarks.
# A private target: never installed or exported, so users' builds never inherit these flags.
add_library(flotilla_dev_flags INTERFACE)
target_compile_options(flotilla_dev_flags INTERFACE
  # No -Wno-missing-field-initializers: every option struct gives each member a default, so the
  # designated initializers users write (and the README shows) build clean under -Wextra.
  $<$<CXX_COMPILER_ID:GNU,Clang>:-Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Werror>
  # GCC 12 false positives: maybe-uninitialized on std::optional and std::map members at -O2, and
  # mismatched-new-delete on Asio's coroutine frames (which pair their own new and delete).
  $<$<CXX_COMPILER_ID:GNU>:-Wno-maybe-uninitialized -Wno-mismatched-new-delete>)
if(FLOTILLA_SANITIZE)
  target_compile_options(flotilla_dev_flags INTERFACE -fsanitize=address,undefined -fno-omit-frame-pointer
                                                      -fno-sanitize-recover=all
                                                      # Clang 14 cannot emit -fsanitize=function's
                                                      # prologue on coroutines ("Cannot represent a
                                                      # difference across sections").
                                                      $<$<CXX_COMPILER_ID:Clang>:-fno-sanitize=function>)
  target_link_options(flotilla_dev_flags INTERFACE -fsanitize=address,undefined)
endif()

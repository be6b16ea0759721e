# Warnings as errors and optional sanitizers for Flotilla's own tests, examples and benchmarks.
# A private target: never installed or exported, so users' builds never inherit these flags.
add_library(flotilla_dev_flags INTERFACE)
target_compile_options(flotilla_dev_flags INTERFACE
  # -Wno-missing-field-initializers: designated initializers leave fields at their defaults on purpose.
  $<$<CXX_COMPILER_ID:GNU,Clang>:-Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Werror
                                  -Wno-missing-field-initializers>)
if(FLOTILLA_SANITIZE)
  target_compile_options(flotilla_dev_flags INTERFACE -fsanitize=address,undefined -fno-omit-frame-pointer
                                                      -fno-sanitize-recover=all)
  target_link_options(flotilla_dev_flags INTERFACE -fsanitize=address,undefined)
endif()

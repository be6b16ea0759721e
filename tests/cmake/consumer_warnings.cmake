# A user's own targets build warning-free with the common warnings as errors (issue: clean user
# builds). consumer_warnings(<target>...) turns them on for the consumer's targets only.
function(consumer_warnings)
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    foreach(target IN LISTS ARGN)
      if(TARGET ${target})
        target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Werror)
      endif()
    endforeach()
  endif()
endfunction()

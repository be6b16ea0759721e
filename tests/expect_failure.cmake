# Runs COMMAND with ARGS; passes only if it exits non-zero and its output matches EXPECT.
separate_arguments(arguments UNIX_COMMAND "${ARGS}")
execute_process(COMMAND ${COMMAND} ${arguments} RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(result EQUAL 0)
  message(FATAL_ERROR "expected a failure, but the command succeeded:\n${out}${err}")
endif()
if(NOT "${out}${err}" MATCHES "${EXPECT}")
  message(FATAL_ERROR "the output does not match '${EXPECT}':\n${out}${err}")
endif()

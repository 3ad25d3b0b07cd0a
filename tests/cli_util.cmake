# Helpers shared by the cli_*.cmake tests (run with cmake -P; PACA is the
# paca command).

# paca_ok(OUT args...): runs `paca args...`, fails the test with paca's
# stderr when it exits non-zero, and stores its stdout in OUT.
function(paca_ok out_var)
  execute_process(COMMAND ${PACA} ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "paca ${ARGN} failed (${rc}): ${err}")
  endif()
  set(${out_var} "${out}" PARENT_SCOPE)
endfunction()

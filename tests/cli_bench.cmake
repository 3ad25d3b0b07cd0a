# `paca bench` runs paca-bench (the build tree's, found from the paca
# executable's own path) with the arguments it was given: a tiny synthetic
# shape measured once, as JSON; and paca-bench's own error for a bad option.
execute_process(COMMAND ${PACA} bench --shape tiny --prompt 8 --depths 8 --tokens 2 --repeats 1 --threads 1 --json
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "paca bench failed (${rc}): ${err}")
endif()
string(JSON model GET "${out}" model)
string(JSON threads GET "${out}" threads)
string(JSON tps GET "${out}" decode_tokens_per_s)
string(JSON ptoks GET "${out}" prefill_tokens)
if(NOT model MATCHES "^tiny" OR NOT threads EQUAL 1 OR NOT tps GREATER 0 OR NOT ptoks EQUAL 8)
  message(FATAL_ERROR "unexpected paca bench output: ${out}")
endif()
execute_process(COMMAND ${PACA} bench --no-such-option RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 0 OR NOT err MATCHES "unknown argument --no-such-option")
  message(FATAL_ERROR "paca bench with a bad option: rc ${rc}, stderr: ${err}")
endif()

# `paca bench` runs paca-bench (the build tree's, through the link beside
# the paca executable) with the arguments it was given: a tiny synthetic
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
set(out_bf16 "${out}")
execute_process(COMMAND ${PACA} bench --no-such-option RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 0 OR NOT err MATCHES "unknown argument --no-such-option")
  message(FATAL_ERROR "paca bench with a bad option: rc ${rc}, stderr: ${err}")
endif()
# FP8 at load: the JSON says so and the weights take fewer bytes; a bad mode is refused.
string(JSON bf16_bytes GET "${out_bf16}" weight_bytes)
execute_process(COMMAND ${PACA} bench --shape tiny --prompt 8 --depths 8 --tokens 2 --repeats 1 --threads 1 --json
                        --weight-dtype fp8 --fp8-targets all --fp8-mode w8a16
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "paca bench --weight-dtype fp8 failed (${rc}): ${err}")
endif()
string(JSON mode GET "${out}" fp8 mode)
string(JSON targets GET "${out}" fp8 targets)
string(JSON fp8_bytes GET "${out}" weight_bytes)
if(NOT mode STREQUAL "w8a16" OR NOT targets STREQUAL "all" OR NOT fp8_bytes LESS bf16_bytes)
  message(FATAL_ERROR "unexpected paca bench --weight-dtype fp8 output (bf16 weights ${bf16_bytes} bytes): ${out}")
endif()
execute_process(COMMAND ${PACA} bench --fp8-mode w4 RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 0 OR NOT err MATCHES "--fp8-mode w4: expected auto, w8a8 or w8a16")
  message(FATAL_ERROR "paca bench --fp8-mode w4: rc ${rc}, stderr: ${err}")
endif()

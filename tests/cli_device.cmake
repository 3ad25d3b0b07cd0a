# `paca --device`: an unavailable device is a clear error (named, with the
# reason), a non-zero exit and no crash; "cpu" is the default; the KV memory
# fraction is range-checked and too small a one says how much was needed.
include(${CMAKE_CURRENT_LIST_DIR}/cli_util.cmake)
file(REMOVE_RECURSE ${WORK})
paca_ok(ignored make-test-model ${WORK}/model --seed 5)
set(M -m ${WORK}/model)

# paca_fails(CODE REGEX args...): paca must exit with status 1 (not a signal),
# and its stderr must name CODE and match REGEX.
function(paca_fails code regex)
  execute_process(COMMAND ${PACA} ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc STREQUAL "1" OR NOT err MATCHES "${code}" OR NOT err MATCHES "${regex}")
    message(FATAL_ERROR "paca ${ARGN}: expected exit 1 with ${code} and '${regex}', got ${rc}: ${err}")
  endif()
endfunction()

# cuda:0: without a GPU (or in a build without CUDA) the reason is given; on
# a machine with one, the run must work
execute_process(COMMAND ${PACA} run ${M} --device cuda:0 --prompt-tokens 1,5,9 -n 4 --ignore-eos --json
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc STREQUAL "0")
  string(JSON n LENGTH "${out}" tokens)
  if(NOT n EQUAL 4)
    message(FATAL_ERROR "paca run --device cuda:0: unexpected output ${out}")
  endif()
  message(STATUS "a CUDA device is present: paca run --device cuda:0 ran")
elseif(NOT rc STREQUAL "1" OR NOT err MATCHES "PACA_ERR_DEVICE" OR NOT err MATCHES "device 'cuda:0' is unavailable"
       OR NOT err MATCHES "(no CUDA device|no CUDA backend)")
  message(FATAL_ERROR "paca run --device cuda:0 without a device must exit 1 with the reason, got ${rc}: ${err}")
endif()

# no machine has cuda:99; every command that loads a model says so
foreach(cmd run eval info)
  paca_fails(PACA_ERR_DEVICE "cuda:99" ${cmd} ${M} --device cuda:99 --prompt-tokens 1,5,9)
endforeach()
paca_fails(PACA_ERR_INVALID_ARGUMENT "unknown device 'tpu:0'" run ${M} --device tpu:0 --prompt-tokens 1,5)
paca_fails(PACA_ERR_INVALID_ARGUMENT "disagree" run ${M} --device cuda:0 --devices cpu --prompt-tokens 1,5)

# --device cpu is the default
paca_ok(a run ${M} --prompt-tokens 1,5,9 -n 6 --ignore-eos --json --threads 2)
paca_ok(b run ${M} --device cpu --prompt-tokens 1,5,9 -n 6 --ignore-eos --json --threads 2)
string(JSON ta GET "${a}" tokens)
string(JSON tb GET "${b}" tokens)
if(NOT ta STREQUAL tb)
  message(FATAL_ERROR "--device cpu changed the tokens: ${ta} vs ${tb}")
endif()

# the KV memory fraction
paca_fails(PACA_ERR_INVALID_ARGUMENT "kv_memory_fraction" run ${M} --kv-memory-fraction 1.5 --prompt-tokens 1,5)
paca_fails(PACA_ERR_OUT_OF_MEMORY "too little memory for the KV cache.*need [0-9]+ bytes.*have 0"
           run ${M} --kv-memory-fraction 1e-30 --prompt-tokens 1,5)
paca_ok(c run ${M} --kv-memory-fraction 0.001 --prompt-tokens 1,5,9 -n 6 --ignore-eos --json --threads 2)
string(JSON tc GET "${c}" tokens)
if(NOT ta STREQUAL tc)
  message(FATAL_ERROR "a reserved KV pool changed the tokens: ${ta} vs ${tc}")
endif()

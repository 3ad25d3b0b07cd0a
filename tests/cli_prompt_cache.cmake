# `paca run --prompt-cache FILE`: the first run misses and writes FILE, the
# second run of the same prompt takes every prompt token from FILE, a run
# with a longer prompt takes the shared prefix; each generates exactly the
# tokens of the same run without a cache. A corrupt cache is a miss.
file(REMOVE_RECURSE ${WORK})
execute_process(COMMAND ${PACA} make-test-model ${WORK}/model --seed 5 RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "make-test-model failed: ${err}")
endif()
set(cache ${WORK}/prompt.snap)

function(run_paca prompt out_tokens out_err)
  execute_process(COMMAND ${PACA} run -m ${WORK}/model --prompt-tokens ${prompt} -n 10 --ignore-eos --json ${ARGN}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "paca run ${ARGN} failed: ${err}")
  endif()
  string(JSON toks GET "${out}" tokens)
  set(${out_tokens} "${toks}" PARENT_SCOPE)
  set(${out_err} "${err}" PARENT_SCOPE)
endfunction()

set(short 1,17,300,45,2048,7,99,512,3,3,3,801)
set(long 1,17,300,45,2048,7,99,512,3,3,3,801,60,61,62)
run_paca(${short} ref_short e)
run_paca(${long} ref_long e)

run_paca(${short} t1 e1 --prompt-cache ${cache})
if(NOT e1 MATCHES "0 of 12 prompt tokens reused" OR NOT EXISTS ${cache})
  message(FATAL_ERROR "first cached run should miss and write the cache: ${e1}")
endif()
run_paca(${short} t2 e2 --prompt-cache ${cache})
if(NOT e2 MATCHES "12 of 12 prompt tokens reused")
  message(FATAL_ERROR "second run should hit the cache: ${e2}")
endif()
run_paca(${long} t3 e3 --prompt-cache ${cache})
if(NOT e3 MATCHES "12 of 15 prompt tokens reused")
  message(FATAL_ERROR "a longer prompt should reuse the cached 12 tokens: ${e3}")
endif()
foreach(pair "t1;ref_short" "t2;ref_short" "t3;ref_long")
  list(GET pair 0 got)
  list(GET pair 1 want)
  if(NOT "${${got}}" STREQUAL "${${want}}")
    message(FATAL_ERROR "${got} generated ${${got}}, without a cache ${${want}}")
  endif()
endforeach()

# A cache file of another kind is a miss (and is replaced), not a failure.
file(WRITE ${cache} "not a snapshot")
run_paca(${short} t4 e4 --prompt-cache ${cache})
if(NOT e4 MATCHES "not a paca session snapshot" OR NOT e4 MATCHES "0 of 12 prompt tokens reused"
   OR NOT "${t4}" STREQUAL "${ref_short}")
  message(FATAL_ERROR "a bad cache should be a miss: ${e4}")
endif()
run_paca(${short} t5 e5 --prompt-cache ${cache})
if(NOT e5 MATCHES "12 of 12 prompt tokens reused")
  message(FATAL_ERROR "the bad cache should have been replaced: ${e5}")
endif()

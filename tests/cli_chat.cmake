# paca run --chat on tiny-llama31 (../shared; skipped without it): the prompt
# ids equal the tokens of the conversation rendered by the independent jinja2
# reference (tests/chat/render_reference.py) with the model's own template,
# system message, built-in tools and date; --json adds the parsed "reply";
# paca chat-template names where the template came from.
set(M ${SHARED}/models/tiny-llama31)
if(NOT EXISTS ${M}/tokenizer_config.json)
  message("cli_chat: ${M} not found, skipped")
  return()
endif()
include(${CMAKE_CURRENT_LIST_DIR}/cli_util.cmake)

set(conv ${WORK}/cli_chat_conversation.json)
file(WRITE ${conv} [=[
[{"name": "c",
  "messages": [{"role": "system", "content": "Answer briefly."},
               {"role": "user", "content": "What's the weather in Paris, ünïcödé?"}],
  "kwargs": {"builtin_tools": ["brave_search", "wolfram_alpha"], "date_string": "03 Feb 2026"}}]
]=])
execute_process(COMMAND ${PYTHON} ${SOURCE}/tests/chat/render_reference.py chat --conversations ${conv}
                        --shared ${SHARED} --out ${WORK}/cli_chat_reference.json
                RESULT_VARIABLE rc ERROR_VARIABLE err)
if(rc EQUAL 77)
  message("cli_chat: python3-jinja2 missing, skipped")
  return()
elseif(NOT rc EQUAL 0)
  message(FATAL_ERROR "render_reference.py failed (${rc}): ${err}")
endif()
file(READ ${WORK}/cli_chat_reference.json ref)
string(JSON text GET "${ref}" results "models/tiny-llama31/tokenizer_config.json" c text)

paca_ok(want tokenize -m ${M} --special --no-bos --json -- "${text}")
string(JSON want_ids GET "${want}" ids)
paca_ok(out run -m ${M} --chat --system "Answer briefly." --builtin-tools brave_search,wolfram_alpha --date "03 Feb 2026"
        -p "What's the weather in Paris, ünïcödé?" -n 3 --threads 1 --json)
string(JSON got_ids GET "${out}" prompt_tokens)
string(JSON n_want LENGTH "${want_ids}")
string(JSON n_got LENGTH "${got_ids}")
string(REGEX REPLACE "[ \n]" "" want_ids "${want_ids}")
string(REGEX REPLACE "[ \n]" "" got_ids "${got_ids}")
if(NOT got_ids STREQUAL want_ids)
  message(FATAL_ERROR "run --chat prompt ids differ from the reference rendering:\n got  ${got_ids}\n want ${want_ids}\n text ${text}")
endif()
# The reply: without tool calls its content is the generated text.
string(JSON content GET "${out}" reply content)
string(JSON generated GET "${out}" text)
string(JSON n_calls LENGTH "${out}" reply tool_calls)
if(n_calls EQUAL 0 AND NOT content STREQUAL generated)
  message(FATAL_ERROR "reply.content differs from text: ${out}")
endif()
string(JSON end GET "${out}" reply end)
if(NOT end MATCHES "^(none|eot|eom|eos)$")
  message(FATAL_ERROR "reply.end: ${out}")
endif()

paca_ok(tmpl chat-template -m ${M})
string(JSON origin GET "${tmpl}" origin)
string(JSON style GET "${tmpl}" style)
if(NOT origin STREQUAL "tokenizer_config.json" OR NOT style STREQUAL "llama3.1")
  message(FATAL_ERROR "chat-template: ${origin} ${style}")
endif()

# --chat without -p, and a bad --builtin-tools name, are clear errors.
execute_process(COMMAND ${PACA} run -m ${M} --chat RESULT_VARIABLE rc ERROR_VARIABLE err OUTPUT_QUIET)
if(rc EQUAL 0 OR NOT err MATCHES "needs -p")
  message(FATAL_ERROR "run --chat without -p: ${rc} ${err}")
endif()
execute_process(COMMAND ${PACA} run -m ${M} -p x --builtin-tools "a b" RESULT_VARIABLE rc ERROR_VARIABLE err OUTPUT_QUIET)
if(rc EQUAL 0 OR NOT err MATCHES "not a tool name")
  message(FATAL_ERROR "run --builtin-tools 'a b': ${rc} ${err}")
endif()
message(STATUS "cli_chat: ${n_got} prompt ids equal the jinja2 reference")

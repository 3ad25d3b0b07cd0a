"""A chat turn with a tool: render the conversation with the model's template,
generate the reply, and read tool calls as objects. The tiny test model has
random weights, so its reply is noise; the tool-call part is shown on a reply
written the way Llama 3.1 writes one.

    python3 examples/python/chat.py ../shared/models
"""
import json
import os
import sys

import paca

models = sys.argv[1] if len(sys.argv) > 1 else "../shared/models"
path = os.path.join(models, "tiny-llama31")
if not os.path.isdir(path):
    print(f"skipped: {path} not found")
    sys.exit(77)

tools = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
messages = [{"role": "user", "content": "What is the weather in Paris?"}]

with paca.Model(path) as model:
    reply = model.chat(messages, tools=tools, max_tokens=16, temperature=0.7, seed=1)
    print(f"reply ({reply.stop_reason}): {reply.content!r}, tool calls: {reply.tool_calls}")

# What a trained Llama 3.1 answers here, and how to continue the conversation:
reply = paca.parse_reply('<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}}<|eom_id|>')
for call in reply.tool_calls:
    print(f"call {call.name}({call.arguments})")
    messages.append(reply.message())
    messages.append({"role": "tool", "content": json.dumps({"temperature_c": 21})})
with paca.Model(path) as model:
    print(model.chat_prompt(messages, tools=tools)[-200:])

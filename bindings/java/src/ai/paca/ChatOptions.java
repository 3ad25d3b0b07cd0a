package ai.paca;

import ai.paca.jni.ChatParams;

/**
 * Settings of a chat rendering (paca_chat_params); null texts are unset. Setters chain.
 * Conversations and tools are JSON, as paca.h describes them.
 */
public final class ChatOptions {
  boolean addGenerationPrompt = true;
  String tools, builtinTools, date, extra, template, specialTokens;
  long now = 0;

  /** End with the assistant header (default true). */
  public ChatOptions addGenerationPrompt(boolean b) { addGenerationPrompt = b; return this; }
  /** A JSON array of tool definitions. */
  public ChatOptions tools(String json) { tools = json; return this; }
  /** A JSON array of Llama 3.1 built-in tool names ("brave_search", "wolfram_alpha", "code_interpreter"). */
  public ChatOptions builtinTools(String json) { builtinTools = json; return this; }
  /** The "Today Date" text, e.g. "05 Mar 2025". */
  public ChatOptions date(String d) { date = d; return this; }
  /** A JSON object of more template variables. */
  public ChatOptions extra(String json) { extra = json; return this; }
  /** Jinja source to use instead of the model's, or "builtin:llama2" / "builtin:llama3" / "builtin:llama3.1". */
  public ChatOptions template(String t) { template = t; return this; }
  /** {"bos_token": ..., "eos_token": ...} instead of the model's. */
  public ChatOptions specialTokens(String json) { specialTokens = json; return this; }
  /** Seconds since the epoch for the template's strftime_now (0: the clock). */
  public ChatOptions now(long seconds) { now = seconds; return this; }

  /** The native settings (the caller deletes them). */
  ChatParams toNative() {
    ChatParams p = new ChatParams();
    p.setAdd_generation_prompt(addGenerationPrompt);
    p.setTools_json(Native.optional(tools));
    p.setBuiltin_tools_json(Native.optional(builtinTools));
    p.setDate(Native.optional(date));
    p.setExtra_json(Native.optional(extra));
    p.setChat_template(Native.optional(template));
    p.setSpecial_tokens_json(Native.optional(specialTokens));
    p.setNow(now);
    return p;
  }
}

package ai.paca;

import ai.paca.jni.ByteVectorList;
import ai.paca.jni.paca_native;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/** Library-wide facts and calls that need no model. */
public final class Paca {
  private Paca() {}

  /** How a reply ended, for parseToolCalls (paca_reply_end). */
  public static final int REPLY_END_NONE = 0, REPLY_END_EOT = 1, REPLY_END_EOM = 2, REPLY_END_EOS = 3;
  /** Log levels (paca_log_level). */
  public static final int LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3;

  /** The library version, "MAJOR.MINOR.PATCH". */
  public static String version() {
    Native.init();
    return paca_native.version();
  }

  /** The ABI version of the loaded library (the shared library's SOVERSION). */
  public static long abiVersion() {
    Native.init();
    return paca_native.abi_version();
  }

  /** Native handles (models, sessions, generations, samplers, ...) open right now; 0 when everything was closed. */
  public static long liveHandles() {
    return Native.live();
  }

  /**
   * Recovers tool calls from a generated reply (special tokens as their text); replyEnd: how
   * generation stopped when the text does not say (REPLY_END_*). JSON: {"content", "tool_calls":
   * [{"type", "name", "arguments"}], "python_tag", "malformed", "end", "awaiting_tool_result"}.
   */
  public static String parseToolCalls(String reply, int replyEnd) {
    Native.init();
    String s = Native.string(paca_native.chat_parse_tool_calls(Native.bytes(reply), replyEnd));
    Native.check();
    return s;
  }

  /** Renders messagesJson with options.template (Jinja source or "builtin:..."), no model needed. */
  public static String chatFormat(String messagesJson, ChatOptions options) {
    Native.init();
    return Chat.format(null, messagesJson, options);
  }

  /**
   * Writes outPath: the GGUF file inPath re-encoded as the quantization mix ("q4_0", "q8_0",
   * "q4_k_m", ...); threads <= 0 uses every core. Returns the JSON summary {"mix", "tensors",
   * "converted", "bytes_in", "bytes_out", "types"}. (No progress callback: it would need a
   * callback across SWIG.)
   */
  public static String quantizeGguf(String inPath, String outPath, String mix, int threads) {
    Native.init();
    String s = Native.string(
        paca_native.quantize_gguf(Native.bytes(inPath), Native.bytes(outPath), Native.bytes(mix), threads));
    Native.check();
    return s;
  }

  /**
   * Sends the library's process-wide log (where a model has no sink of its own) to a queue that
   * takeLog drains, keeping lines up to maxLevel (LOG_*; at most 10000 wait).
   */
  public static void captureLog(int maxLevel) {
    Native.init();
    paca_native.set_log_capture(true, maxLevel);
  }

  /** Restores the default log (stderr) with maxLevel (LOG_WARN is the library's default). */
  public static void logToStderr(int maxLevel) {
    Native.init();
    paca_native.set_log_capture(false, maxLevel);
  }

  /** The queued log lines, oldest first, removed from the queue. */
  public static List<LogLine> takeLog() {
    Native.init();
    ByteVectorList v = paca_native.log_take();
    List<LogLine> out = new ArrayList<>();
    for (int i = 0; i < v.size(); ++i) {
      String s = new String(Native.byteArray(v.get(i)), StandardCharsets.UTF_8);
      out.add(new LogLine(s.charAt(0) - '0', s.substring(2)));
    }
    v.delete();
    return out;
  }

  /** One log line: its level (LOG_*) and message. */
  public static final class LogLine {
    public final int level;
    public final String message;

    LogLine(int level, String message) {
      this.level = level;
      this.message = message;
    }

    @Override
    public String toString() {
      return level + " " + message;
    }
  }
}

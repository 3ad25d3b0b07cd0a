package ai.paca;

import ai.paca.jni.ByteVector;
import ai.paca.jni.ChatParams;
import ai.paca.jni.IntVector;
import ai.paca.jni.SWIGTYPE_p_paca_model;
import ai.paca.jni.paca_native;
import java.util.function.BiFunction;

/** The chat calls behind Model.chatFormat / chatFormatJson / chatTokenize and Paca.chatFormat. */
final class Chat {
  private Chat() {}

  /** Runs call(messages, params) with options' native settings, checking its status. */
  private static <T> T run(String messagesJson, ChatOptions options, BiFunction<ByteVector, ChatParams, T> call) {
    ByteVector messages = Native.bytes(messagesJson);
    ChatParams p = (options == null ? new ChatOptions() : options).toNative();
    try {
      T result = call.apply(messages, p);
      Native.check();
      return result;
    } finally {
      p.delete();
      messages.delete();
    }
  }

  static String format(SWIGTYPE_p_paca_model m, String messagesJson, ChatOptions options) {
    return Native.string(run(messagesJson, options, (msgs, p) -> paca_native.chat_format(m, msgs, p)));
  }

  static String formatJson(SWIGTYPE_p_paca_model m, String messagesJson, ChatOptions options) {
    return Native.string(run(messagesJson, options, (msgs, p) -> paca_native.chat_format_json(m, msgs, p)));
  }

  static int[] tokenize(SWIGTYPE_p_paca_model m, String messagesJson, ChatOptions options) {
    IntVector v = run(messagesJson, options, (msgs, p) -> paca_native.chat_tokenize(m, msgs, p));
    return Native.array(v);
  }
}

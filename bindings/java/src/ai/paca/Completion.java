package ai.paca;

/** A finished generation. stopReason: "eos", "stop_token", "stop_string", "length" or "context_full". */
public final class Completion {
  public final String text;
  public final int[] tokens;
  public final String stopReason;

  Completion(String text, int[] tokens, String stopReason) {
    this.text = text;
    this.tokens = tokens;
    this.stopReason = stopReason;
  }
}

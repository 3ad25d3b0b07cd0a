package ai.paca;

import ai.paca.jni.RequestParams;

/**
 * What an engine request adds to its GenerateOptions: priority (higher starts first and is
 * preempted last), logprobs (each event carries its token's log-probability), special (control
 * tokens appear as their text). Setters chain.
 */
public final class RequestOptions {
  int priority = 0;
  boolean logprobs = false;
  boolean special = false;
  int[] biasTokens = new int[0];
  float[] biasValues = new float[0];

  public RequestOptions priority(int p) { priority = p; return this; }
  public RequestOptions logprobs(boolean b) { logprobs = b; return this; }
  public RequestOptions special(boolean b) { special = b; return this; }
  /**
   * The request's logit bias: values[i] is added to the logit of tokens[i] (-Infinity bans it);
   * the arrays are copied. Checked at submit (PacaException INVALID_ARGUMENT).
   */
  public RequestOptions logitBias(int[] tokens, float[] values) {
    if (tokens == null || values == null) throw new PacaException(PacaException.INVALID_ARGUMENT, "logit bias is null");
    biasTokens = tokens.clone();
    biasValues = values.clone();
    return this;
  }

  /** The native settings (the caller deletes them). */
  RequestParams toNative() {
    RequestParams p = new RequestParams();
    p.setPriority(priority);
    p.setLogprobs(logprobs);
    p.setSpecial(special);
    p.setLogit_bias_tokens(Native.ids(biasTokens));
    p.setLogit_bias_values(Native.floats(biasValues));
    return p;
  }
}

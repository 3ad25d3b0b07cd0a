package ai.paca;

import ai.paca.jni.SWIGTYPE_p_paca_sampler;
import ai.paca.jni.paca_native;

/**
 * A sampler (paca_sampler): turns a session's last logits, or logits you hold, into the next
 * token with the chain of GenerateOptions (logit bias, penalties, top-k, top-p, min-p,
 * temperature, seeded draw; greedy at temperature 0). It copies what it needs from the model.
 * Used by one thread at a time. Close it; closing twice is harmless.
 */
public final class Sampler implements AutoCloseable {
  private SWIGTYPE_p_paca_sampler handle;

  /** A sampler for model's vocabulary with options' sampling settings (its stop strings are ignored). */
  public Sampler(Model model, GenerateOptions options) {
    if (options == null) options = new GenerateOptions();
    ai.paca.jni.GenerateParams p = options.toNative();
    SWIGTYPE_p_paca_sampler h = paca_native.sampler_create(Native.require(model, "model").handle(), p);
    p.delete();
    Native.check();
    handle = h;
    Native.opened();
  }

  /** Takes a sampler the library made (a snapshot's). */
  Sampler(SWIGTYPE_p_paca_sampler h) {
    handle = h;
    Native.opened();
  }

  SWIGTYPE_p_paca_sampler handle() {
    if (handle == null) throw new IllegalStateException("the sampler is closed");
    return handle;
  }

  /**
   * Replaces the logit bias table: biases[i] is added to the logit of tokens[i] (-Infinity bans
   * it). Empty arrays clear it. Ids outside the vocabulary, NaN or +Infinity: PacaException
   * INVALID_ARGUMENT, and the table is unchanged.
   */
  public void setLogitBias(int[] tokens, float[] biases) {
    paca_native.sampler_set_logit_bias(handle(), Native.ids(tokens), Native.floats(biases));
    Native.check();
  }

  /** The next token from session's last logits (PacaException STATE when it has none); the session is not changed. */
  public int sample(Session session) {
    int t = paca_native.sampler_sample(handle(), Native.require(session, "session").handle(), null);
    Native.check();
    return t;
  }

  /** As sample, with the token's log-probabilities. */
  public TokenLogprobs sampleWithLogprobs(Session session) {
    ai.paca.jni.TokenLogprobs lp = new ai.paca.jni.TokenLogprobs();
    try {
      paca_native.sampler_sample(handle(), Native.require(session, "session").handle(), lp);
      Native.check();
      return new TokenLogprobs(lp);
    } finally {
      lp.delete();
    }
  }

  /** The next token from logits (the vocabulary's size) after history (its length is the position). */
  public int sampleLogits(float[] logits, int[] history) {
    int t = paca_native.sampler_sample_logits(handle(), Native.floats(logits), Native.ids(history), null);
    Native.check();
    return t;
  }

  /**
   * Whether to stop after token was generated as number nGenerated (1-based): "eos", "stop_token",
   * "length", or null to go on.
   */
  public String stopReason(int token, long nGenerated) {
    return Generation.reason(paca_native.sampler_stop_reason(handle(), token, nGenerated));
  }

  @Override
  public void close() {
    if (handle != null) {
      paca_native.sampler_free(handle);
      handle = null;
      Native.closed();
    }
  }
}

package ai.paca;

/**
 * Log-probabilities of one sampled token (paca_token_logprobs): those of the adjusted logits
 * (after logit bias and penalties, before truncation and temperature), natural log.
 */
public final class TokenLogprobs {
  /** The chosen token. */
  public final int token;
  /** Its log-probability. */
  public final float logprob;
  /** The most probable tokens, most probable first (as many as GenerateOptions.topLogprobs). */
  public final int[] topTokens;
  /** Their log-probabilities. */
  public final float[] topLogprobs;

  TokenLogprobs(ai.paca.jni.TokenLogprobs n) {
    token = n.getToken();
    logprob = n.getLogprob();
    topTokens = Native.array(n.getTop_tokens());
    topLogprobs = Native.array(n.getTop_logprobs());
  }
}

package ai.paca;

import ai.paca.jni.EngineEvent;

/**
 * What a request's last event reports: prompt tokens, those whose KV came from the prefix cache,
 * tokens generated, times preempted (and recomputed), and milliseconds from submit to its first
 * step, its first token and its end.
 */
public final class RequestStats {
  public final int promptTokens;
  public final int cachedTokens;
  public final int generatedTokens;
  public final int preemptions;
  public final double queueMs;
  public final double firstTokenMs;
  public final double totalMs;

  RequestStats(EngineEvent e) {
    promptTokens = e.getN_prompt();
    cachedTokens = e.getN_cached();
    generatedTokens = e.getN_generated();
    preemptions = e.getN_preempted();
    queueMs = e.getQueue_ms();
    firstTokenMs = e.getFirst_token_ms();
    totalMs = e.getTotal_ms();
  }
}

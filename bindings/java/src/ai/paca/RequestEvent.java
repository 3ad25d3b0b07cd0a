package ai.paca;

import ai.paca.jni.EngineEvent;

/**
 * One event of an engine request: a generated token and the text it completes (possibly
 * empty), or the request's end. token is -1 in an end event that carries none; logprob is the
 * token's log-probability when the request asked for logprobs (else 0); stopReason is null while
 * the request goes on, else "eos", "stop_token", "stop_string", "length" or "context_full"; the
 * last event has stats.
 */
public final class RequestEvent {
  static final String[] REASONS = {null, "eos", "stop_token", "stop_string", "length", "context_full"};

  public final int token;
  public final String text;
  public final float logprob;
  public final String stopReason;
  public final boolean last;
  public final RequestStats stats;
  final int status;     // not 0: the request failed or was cancelled (and ended)
  final String error;   // its message

  RequestEvent(EngineEvent e) {
    token = e.getToken();
    text = Native.string(e.getText());
    logprob = e.getLogprob();
    int r = e.getStop_reason();
    stopReason = r >= 0 && r < REASONS.length ? REASONS[r] : "unknown";
    last = e.getLast();
    stats = last ? new RequestStats(e) : null;
    status = e.getStatus();
    error = e.getError();
  }
}

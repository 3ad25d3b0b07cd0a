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

  public RequestOptions priority(int p) { priority = p; return this; }
  public RequestOptions logprobs(boolean b) { logprobs = b; return this; }
  public RequestOptions special(boolean b) { special = b; return this; }

  /** The native settings (the caller deletes them). */
  RequestParams toNative() {
    RequestParams p = new RequestParams();
    p.setPriority(priority);
    p.setLogprobs(logprobs);
    p.setSpecial(special);
    return p;
  }
}

package ai.paca;

import ai.paca.jni.FloatVector;
import ai.paca.jni.IntVector;
import ai.paca.jni.SWIGTYPE_p_paca_session;
import ai.paca.jni.paca_native;

/** One sequence on a model; used by one thread at a time. Closing twice is harmless. */
public final class Session implements AutoCloseable {
  private SWIGTYPE_p_paca_session handle;
  private final Model model;

  Session(Model model, int contextSize) {
    SWIGTYPE_p_paca_session h = paca_native.session_create(model.handle(), contextSize);
    Native.check();
    handle = h;
    this.model = model;
    Native.opened();
  }

  SWIGTYPE_p_paca_session handle() {
    if (handle == null) throw new IllegalStateException("the session is closed");
    return handle;
  }

  /** Appends tokens and computes the logits of the last one. */
  public void prefill(int[] tokens) {
    paca_native.session_prefill(handle(), new IntVector(tokens));
    Native.check();
  }

  /** Appends one token and computes its logits. */
  public void decode(int token) {
    paca_native.session_decode(handle(), token);
    Native.check();
  }

  /** Keeps the first n tokens. */
  public void rewind(long n) {
    paca_native.session_rewind(handle(), n);
    Native.check();
  }

  public long length() {
    return paca_native.session_length(handle());
  }

  /** A copy of the last position's logits. */
  public float[] logits() {
    FloatVector v = paca_native.session_logits(handle());
    Native.check();
    float[] a = new float[v.size()];
    for (int i = 0; i < a.length; ++i) a[i] = v.get(i);
    return a;
  }

  /** Prefills prompt and streams the generated text (an Iterator; close it if you stop early). */
  public Generation generate(int[] prompt, GenerateOptions options) {
    return new Generation(this, prompt, options, false);
  }

  Model model() {
    return model;
  }

  @Override
  public void close() {
    if (handle != null) {
      paca_native.session_free(handle);
      handle = null;
      Native.closed();
    }
  }
}

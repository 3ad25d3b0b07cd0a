package ai.paca;

import ai.paca.jni.FloatVector;
import ai.paca.jni.IntVector;
import ai.paca.jni.SWIGTYPE_p_paca_session;
import ai.paca.jni.paca_native;

/** One sequence on a model; used by one thread at a time. Closing twice is harmless. */
public final class Session implements AutoCloseable {
  private volatile SWIGTYPE_p_paca_session handle;
  private final Model model;

  Session(Model model, int contextSize) {
    SWIGTYPE_p_paca_session h = paca_native.session_create(model.handle(), contextSize);
    Native.check();
    handle = h;
    this.model = model;
    Native.opened();
  }

  /** Takes a session the library made (a fork, a loaded snapshot). */
  Session(Model model, SWIGTYPE_p_paca_session h) {
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
    paca_native.session_prefill(handle(), Native.ids(tokens));
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

  /** The context size in tokens. */
  public long contextSize() {
    return paca_native.session_context_size(handle());
  }

  /** The sequence's token ids. */
  public int[] tokens() {
    IntVector v = paca_native.session_tokens(handle());
    Native.check();
    return Native.array(v);
  }

  /**
   * Asks a prefill/decode running on this session (on another thread) to stop: it then throws
   * PacaException CANCELLED and leaves the session as before. Any thread, any time; the request
   * is cleared when the next prefill/decode starts. A closed session: nothing happens.
   */
  public void cancel() {
    SWIGTYPE_p_paca_session h = handle;
    if (h != null) paca_native.session_cancel(h);
  }

  /** A new session continuing from this one's state (tokens, KV cache shared copy-on-write, logits). */
  public Session fork() {
    SWIGTYPE_p_paca_session h = paca_native.session_fork(handle());
    Native.check();
    return new Session(model, h);
  }

  /** Saves the session to a snapshot file at path (replacing it, crash-safe). */
  public void save(String path) {
    save(path, null);
  }

  /** As save, storing sampler's settings too (null: none); Model.loadSessionWithSampler gives them back. */
  public void save(String path, Sampler sampler) {
    paca_native.session_save(handle(), sampler == null ? null : sampler.handle(), Native.bytes(path));
    Native.check();
  }

  /**
   * Prompt cache: on an empty session, restores the longest prefix of tokens the snapshot at
   * cachePath holds and prefills the rest; returns how many tokens came from the cache (a missing
   * or foreign cache is a miss, 0). Save the session to cachePath afterwards to extend it.
   */
  public long prefillCached(String cachePath, int[] tokens) {
    long n = paca_native.session_prefill_cached(handle(), Native.bytes(cachePath), Native.ids(tokens));
    Native.check();
    return n;
  }

  /** A copy of the last position's logits. */
  public float[] logits() {
    FloatVector v = paca_native.session_logits(handle());
    Native.check();
    return Native.array(v);
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

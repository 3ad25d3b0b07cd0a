package ai.paca;

import ai.paca.jni.IntVector;
import ai.paca.jni.SWIGTYPE_p_paca_model;
import ai.paca.jni.paca_native;
import java.util.stream.Stream;

/**
 * A loaded model (Hugging Face directory, .gguf or llama2.c .bin); may be shared by threads.
 * Close it (try-with-resources); closing twice is harmless, and sessions keep its memory alive.
 */
public final class Model implements AutoCloseable {
  private SWIGTYPE_p_paca_model handle;

  /** Loads with every hardware thread. Throws PacaException (status IO for a missing file). */
  public Model(String path) {
    this(path, 0);
  }

  public Model(String path, int threads) {
    Native.init();
    SWIGTYPE_p_paca_model h = paca_native.model_load(Native.bytes(path), threads);
    Native.check();
    handle = h;
    Native.opened();
  }

  SWIGTYPE_p_paca_model handle() {
    if (handle == null) throw new IllegalStateException("the model is closed");
    return handle;
  }

  /** Vocabulary size. */
  public int vocabSize() {
    int n = paca_native.model_n_vocab(handle());
    Native.check();
    return n;
  }

  /** Token ids of text: bos adds the start token, special recognises control-token text. */
  public int[] tokenize(String text, boolean bos, boolean special) {
    IntVector v = paca_native.tokenize(handle(), Native.bytes(text), (bos ? 1 : 0) | (special ? 2 : 0));
    Native.check();
    return toArray(v);
  }

  public int[] tokenize(String text) {
    return tokenize(text, true, false);
  }

  /** The text of token ids. */
  public String detokenize(int[] ids) {
    String s = Native.string(paca_native.detokenize(handle(), new IntVector(ids), 0));
    Native.check();
    return s;
  }

  /** A new session (context 0: the model's). */
  public Session newSession(int contextSize) {
    return new Session(this, contextSize);
  }

  public Session newSession() {
    return newSession(0);
  }

  /** Streams the continuation of prompt (tokenized with BOS) as text pieces, in a session of its own. */
  public Generation generate(String prompt, GenerateOptions options) {
    Session s = newSession();
    try {
      return new Generation(s, tokenize(prompt), options, true);
    } catch (RuntimeException e) {
      s.close();
      throw e;
    }
  }

  /** As generate, as a Stream (close it, or read it to the end, to free the generation). */
  public Stream<String> stream(String prompt, GenerateOptions options) {
    Generation g = generate(prompt, options);
    return g.stream();
  }

  /** The whole generation: text, tokens and stop reason. */
  public Completion complete(String prompt, GenerateOptions options) {
    try (Generation g = generate(prompt, options)) {
      return g.complete();
    }
  }

  @Override
  public void close() {
    if (handle != null) {
      paca_native.model_free(handle);
      handle = null;
      Native.closed();
    }
  }

  static int[] toArray(IntVector v) {
    int[] a = new int[v.size()];
    for (int i = 0; i < a.length; ++i) a[i] = v.get(i);
    return a;
  }
}

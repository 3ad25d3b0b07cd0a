package ai.paca;

import ai.paca.jni.GeneratorList;
import ai.paca.jni.IntVector;
import ai.paca.jni.SWIGTYPE_p_paca_model;
import ai.paca.jni.SWIGTYPE_p_paca_session;
import ai.paca.jni.paca_native;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.stream.Stream;

/**
 * A loaded model (Hugging Face directory, .gguf or llama2.c .bin); may be shared by threads.
 * Close it (try-with-resources); closing twice is harmless, and sessions keep its memory alive.
 * An open Engine on it defers the native free to the engine's close (paca.h: a model outlives
 * its engines).
 */
public final class Model implements AutoCloseable {
  private SWIGTYPE_p_paca_model handle;
  private volatile boolean closed;
  private int engines;  // open engines on the model (guarded by this)

  /** Loads with every hardware thread. Throws PacaException (status IO for a missing file). */
  public Model(String path) {
    this(path, 0);
  }

  public Model(String path, int threads) {
    this(path, new ModelOptions().threads(threads));
  }

  /** Loads with options (null: the defaults). */
  public Model(String path, ModelOptions options) {
    Native.init();
    ai.paca.jni.ModelParams p = (options == null ? new ModelOptions() : options).toNative();
    SWIGTYPE_p_paca_model h = paca_native.model_load_with(Native.bytes(path), p);
    p.delete();
    Native.check();
    handle = h;
    Native.opened();
  }

  SWIGTYPE_p_paca_model handle() {
    if (closed) throw new IllegalStateException("the model is closed");
    return handle;
  }

  /** An engine opens on the model: the native model stays until release(). */
  synchronized SWIGTYPE_p_paca_model retain() {
    SWIGTYPE_p_paca_model h = handle();
    ++engines;
    return h;
  }

  /** That engine was closed. */
  synchronized void release() {
    if (--engines == 0 && closed) free();
  }

  /** What the model is: sizes, special ids, parameter and memory counts. */
  public ModelInfo info() {
    ai.paca.jni.ModelInfo n = new ai.paca.jni.ModelInfo();
    try {
      paca_native.model_info(handle(), n);
      Native.check();
      return new ModelInfo(n);
    } finally {
      n.delete();
    }
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
    return detokenize(ids, false, false);
  }

  /** The text of token ids; special renders control tokens, keepLeadingSpace keeps a Llama 2 first space. */
  public String detokenize(int[] ids, boolean special, boolean keepLeadingSpace) {
    String s = Native.string(
        paca_native.detokenize(handle(), Native.ids(ids), (special ? 1 : 0) | (keepLeadingSpace ? 2 : 0)));
    Native.check();
    return s;
  }

  /**
   * The raw UTF-8 bytes of one token (possibly part of a character: join pieces before decoding,
   * or use a Detokenizer); control tokens give their text only with special.
   */
  public byte[] tokenToPiece(int id, boolean special) {
    byte[] b = Native.byteArray(paca_native.token_to_piece(handle(), id, special ? 1 : 0));
    Native.check();
    return b;
  }

  /** The TokenAttributes bits of id. */
  public int tokenAttributes(int id) {
    long a = paca_native.token_attributes(handle(), id);
    Native.check();
    return (int) a;
  }

  /** A JSON description of the model (format, architecture, sizes, dtypes, special tokens, memory, fingerprint). */
  public String describeJson() {
    String s = Native.string(paca_native.model_describe_json(handle()));
    Native.check();
    return s;
  }

  /** messagesJson rendered as prompt text by the model's chat format (options null: defaults). */
  public String chatFormat(String messagesJson, ChatOptions options) {
    return Chat.format(handle(), messagesJson, options);
  }

  /** As chatFormat, as JSON {"text", "segments": [{"offset", "length", "user"}], "template"}. */
  public String chatFormatJson(String messagesJson, ChatOptions options) {
    return Chat.formatJson(handle(), messagesJson, options);
  }

  /** The rendered conversation's token ids; special-token text inside messages stays text. */
  public int[] chatTokenize(String messagesJson, ChatOptions options) {
    return Chat.tokenize(handle(), messagesJson, options);
  }

  /** The model's chat format as JSON: {"origin", "style", "bos_token", "eos_token", ..., "source"}. */
  public String chatTemplateJson() {
    String s = Native.string(paca_native.chat_template_json(handle()));
    Native.check();
    return s;
  }

  /** Paca.parseToolCalls, here for convenience. */
  public String parseToolCalls(String reply, int replyEnd) {
    return Paca.parseToolCalls(reply, replyEnd);
  }

  /** A streaming detokenizer for this model. */
  public Detokenizer newDetokenizer(boolean special, boolean keepLeadingSpace) {
    return new Detokenizer(this, special, keepLeadingSpace);
  }

  /** A sampler with options' sampling settings. */
  public Sampler newSampler(GenerateOptions options) {
    return new Sampler(this, options);
  }

  /** Loads a snapshot (Session.save) into a new session of this model. */
  public Session loadSession(String path) {
    SWIGTYPE_p_paca_session h = paca_native.session_load(handle(), Native.bytes(path));
    Native.check();
    return new Session(this, h);
  }

  /** Loads a snapshot and the sampler stored with it (Session.save(path, sampler)). */
  public LoadedSession loadSessionWithSampler(String path) {
    ai.paca.jni.LoadedSession r = paca_native.session_load_with_sampler(handle(), Native.bytes(path));
    try {
      Native.check();
      Session s = new Session(this, r.getSession());
      return new LoadedSession(s, r.getSampler() == null ? null : new Sampler(r.getSampler()));
    } finally {
      r.delete();
    }
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

  /** completeBatch with the same options for every prompt. */
  public List<Completion> completeBatch(List<String> prompts, GenerateOptions options) {
    return completeBatch(prompts, Collections.singletonList(options));
  }

  /**
   * complete() for several prompts at once (paca_generator_next_batch): each step runs every
   * unfinished prompt through the model together, reading each weight once for all of them, and
   * each prompt gets exactly the Completion complete() gives it alone. options: one for every
   * prompt, or one per prompt (e.g. a seed each). Each prompt runs in a session of its own.
   */
  public List<Completion> completeBatch(List<String> prompts, List<GenerateOptions> options) {
    int n = prompts.size();
    if (options.size() != 1 && options.size() != n) {
      throw new IllegalArgumentException(
          options.size() + " options for " + n + " prompts (give one for all, or one per prompt)");
    }
    List<Generation> gens = new ArrayList<>();
    try {
      for (int i = 0; i < n; ++i) gens.add(generate(prompts.get(i), options.get(options.size() == 1 ? 0 : i)));
      List<StringBuilder> texts = new ArrayList<>();
      List<Integer> active = new ArrayList<>();
      for (int i = 0; i < n; ++i) {
        texts.add(new StringBuilder());
        active.add(i);
      }
      while (!active.isEmpty()) {
        GeneratorList batch = new GeneratorList();
        for (int i : active) batch.add(gens.get(i).nativeHandle());
        IntVector toks = paca_native.generator_next_batch(batch);
        batch.delete();
        Native.check();
        List<Integer> still = new ArrayList<>();
        for (int k = 0; k < active.size(); ++k) {
          int i = active.get(k);
          Generation g = gens.get(i);
          texts.get(i).append(g.take(toks.get(k)));
          if (g.nativeHandle() != null) still.add(i);
        }
        toks.delete();
        active = still;
      }
      List<Completion> out = new ArrayList<>();
      for (int i = 0; i < n; ++i) {
        Generation g = gens.get(i);
        out.add(new Completion(texts.get(i).toString(), g.tokens(), g.stopReason()));
      }
      return out;
    } finally {
      for (Generation g : gens) g.close();
    }
  }

  @Override
  public synchronized void close() {
    if (closed) return;
    closed = true;
    if (engines == 0) free();
  }

  private void free() {
    paca_native.model_free(handle);
    handle = null;
    Native.closed();
  }

  static int[] toArray(IntVector v) {
    return Native.array(v);
  }
}

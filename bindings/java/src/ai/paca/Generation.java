package ai.paca;

import ai.paca.jni.GenerateParams;
import ai.paca.jni.Generator;
import ai.paca.jni.IntVector;
import ai.paca.jni.paca_native;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.NoSuchElementException;
import java.util.Spliterator;
import java.util.Spliterators;
import java.util.stream.Stream;
import java.util.stream.StreamSupport;

/**
 * One generation (paca_generator): an Iterator of the text pieces as they are generated. The
 * native generation is freed when the iterator reaches its end or on close().
 */
public final class Generation implements Iterator<String>, AutoCloseable {
  private static final String[] REASONS = {null, "eos", "stop_token", "stop_string", "length", "context_full"};

  private Generator handle;
  private final Session session;
  private final boolean ownsSession;
  private final List<Integer> tokens = new ArrayList<>();
  private final List<TokenLogprobs> logprobs;  // null unless GenerateOptions.logprobs
  private String next;  // the next non-empty piece, or null
  private String stopReason;

  Generation(Session session, int[] prompt, GenerateOptions o, boolean ownsSession) {
    if (o == null) o = new GenerateOptions();
    IntVector ids = Native.ids(prompt);
    GenerateParams p = o.toNative();
    Generator h = paca_native.generator_create(session.handle(), ids, p);
    p.delete();
    Native.check();
    handle = h;
    this.session = session;
    this.ownsSession = ownsSession;
    logprobs = o.logprobs ? new ArrayList<>() : null;
    Native.opened();
  }

  /** The name of a paca_stop_reason ("eos", ...), null for PACA_STOP_NONE or an unknown value. */
  static String reason(int r) {
    return r > 0 && r < REASONS.length ? REASONS[r] : null;
  }

  private void advance() {
    while (next == null && handle != null) {
      int tok = paca_native.generator_next(handle);
      Native.check();
      String piece = take(tok);
      if (!piece.isEmpty()) next = piece;
    }
  }

  /** The native generator, for a batched step (Model.completeBatch); null once the generation ended. */
  Generator nativeHandle() {
    return handle;
  }

  /**
   * Takes one step's result (generator_next's, or this generator's entry of a batched step):
   * records the token (-1: none), returns its text, and closes the generation when it has ended.
   */
  String take(int tok) {
    String piece = "";
    if (tok >= 0) {
      tokens.add(tok);
      piece = Native.string(paca_native.generator_text(handle));
      if (logprobs != null) {
        ai.paca.jni.TokenLogprobs lp = new ai.paca.jni.TokenLogprobs();
        try {
          paca_native.generator_logprobs(handle, lp);
          Native.check();
          logprobs.add(new TokenLogprobs(lp));
        } finally {
          lp.delete();
        }
      }
    }
    int reason = paca_native.generator_stop_reason(handle);
    if (reason != 0) {
      stopReason = REASONS[reason];
      close();
    }
    return piece;
  }

  @Override
  public boolean hasNext() {
    advance();
    return next != null;
  }

  @Override
  public String next() {
    advance();
    if (next == null) throw new NoSuchElementException();
    String s = next;
    next = null;
    return s;
  }

  /** The pieces as a Stream; closing the stream closes the generation. */
  public Stream<String> stream() {
    return StreamSupport.stream(Spliterators.spliteratorUnknownSize(this, Spliterator.ORDERED), false)
        .onClose(this::close);
  }

  /** Reads the rest of the generation. */
  public Completion complete() {
    StringBuilder sb = new StringBuilder();
    while (hasNext()) sb.append(next());
    int[] t = new int[tokens.size()];
    for (int i = 0; i < t.length; ++i) t[i] = tokens.get(i);
    return new Completion(sb.toString(), t, stopReason);
  }

  /** Ids generated so far. */
  public int[] tokens() {
    return tokens.stream().mapToInt(Integer::intValue).toArray();
  }

  /** Tokens generated so far, as the native generator counts them (paca_generator_n_generated). */
  public long nGenerated() {
    return handle != null ? paca_native.generator_n_generated(handle) : tokens.size();
  }

  /**
   * The log-probabilities of each token generated so far, in order (GenerateOptions.logprobs);
   * PacaException STATE when the options did not ask for them.
   */
  public List<TokenLogprobs> logprobs() {
    if (logprobs == null) throw new PacaException(PacaException.STATE, "the generation was not asked for logprobs");
    return new ArrayList<>(logprobs);
  }

  /** Why the generation ended (null while it goes on). */
  public String stopReason() {
    return stopReason;
  }

  @Override
  public void close() {
    if (handle != null) {
      paca_native.generator_free(handle);
      handle = null;
      Native.closed();
      if (ownsSession) session.close();
    }
  }
}

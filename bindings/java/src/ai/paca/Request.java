package ai.paca;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.NoSuchElementException;
import java.util.concurrent.CancellationException;

/**
 * A request submitted to an Engine: an Iterator of its RequestEvents as they come (each wait a
 * native poll), up to and including its last event. A request that was cancelled or failed
 * throws its PacaException (status CANCELLED after cancel()) in place of its last event. Used by
 * one thread at a time. Closing it before its end cancels it.
 */
public final class Request implements Iterator<RequestEvent>, AutoCloseable {
  private final Engine engine;
  private final long id;
  private final boolean logprobs;
  private final List<Integer> tokens = new ArrayList<>();
  private final List<Float> logprobValues = new ArrayList<>();
  private final StringBuilder text = new StringBuilder();
  private RequestEvent next;  // polled, not yet handed out
  private volatile boolean ended;  // the last event was polled (or the request closed)
  private String stopReason;
  private RequestStats stats;

  Request(Engine engine, long id, boolean logprobs) {
    this.engine = engine;
    this.id = id;
    this.logprobs = logprobs;
  }

  /** The engine's id of the request. */
  public long id() {
    return id;
  }

  /** Asks the engine to end the request at its next step (harmless once it has ended). */
  public void cancel() {
    engine.cancel(id);
  }

  /**
   * The next event, waiting up to timeoutMs (0: not at all; &lt; 0: as long as it takes); null
   * when none came in time or the request has ended. A wait is interrupted by
   * Thread.interrupt() (CancellationException, the interrupt flag kept) and by closing the
   * engine (IllegalStateException).
   */
  public synchronized RequestEvent poll(long timeoutMs) {
    if (next != null) {
      RequestEvent e = next;
      next = null;
      return e;
    }
    long deadline = System.nanoTime() + Math.max(timeoutMs, 0) * 1_000_000L;
    while (!ended) {
      long slice = Engine.SLICE_MS;
      if (timeoutMs >= 0) slice = Math.max(0, Math.min(slice, (deadline - System.nanoTime()) / 1_000_000L));
      RequestEvent e = engine.pollOnce(id, (int) slice);
      if (e != null) return take(e);
      if (Thread.currentThread().isInterrupted()) {
        throw new CancellationException("interrupted while waiting for request " + id);
      }
      if (timeoutMs >= 0 && System.nanoTime() >= deadline) return null;
    }
    return null;
  }

  private RequestEvent take(RequestEvent e) {
    if (e.token >= 0) {
      tokens.add(e.token);
      if (logprobs) logprobValues.add(e.logprob);
    }
    text.append(e.text);
    if (e.last) {
      ended = true;
      stopReason = e.stopReason;
      stats = e.stats;
      if (e.status != 0) throw new PacaException(e.status, e.error);
    }
    return e;
  }

  @Override
  public synchronized boolean hasNext() {
    if (next == null && !ended) next = poll(-1);
    return next != null;
  }

  @Override
  public synchronized RequestEvent next() {
    if (!hasNext()) throw new NoSuchElementException();
    RequestEvent e = next;
    next = null;
    return e;
  }

  /** Waits for the rest of the request: its whole text, tokens and stop reason. */
  public synchronized Completion complete() {
    while (hasNext()) next();
    return new Completion(text.toString(), tokens(), stopReason);
  }

  /** Ids generated so far. */
  public synchronized int[] tokens() {
    return tokens.stream().mapToInt(Integer::intValue).toArray();
  }

  /** Log-probabilities of the tokens so far (empty unless the request asked for them). */
  public synchronized float[] logprobs() {
    float[] a = new float[logprobValues.size()];
    for (int i = 0; i < a.length; ++i) a[i] = logprobValues.get(i);
    return a;
  }

  /** Why the request ended (null while it goes on). */
  public synchronized String stopReason() {
    return stopReason;
  }

  /** The last event's statistics (null before it). */
  public synchronized RequestStats stats() {
    return stats;
  }

  /** Whether its last event has been taken. */
  public synchronized boolean done() {
    return ended && next == null;
  }

  /** Cancels the request unless it has ended; the engine then drops its remaining events. */
  @Override
  public void close() {
    if (ended || engine.closed()) return;
    try {
      engine.cancel(id);  // first: a thread waiting on the request then gets its end
    } catch (IllegalStateException e) {
      return;  // the engine was closed meanwhile, which ended the request
    }
    synchronized (this) {
      if (ended) return;
      ended = true;
    }
    engine.abandon(id);
  }
}

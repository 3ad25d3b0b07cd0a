package ai.paca;

import ai.paca.jni.EngineCounters;
import ai.paca.jni.EngineEvent;
import ai.paca.jni.EngineParams;
import ai.paca.jni.GenerateParams;
import ai.paca.jni.IntVector;
import ai.paca.jni.RequestParams;
import ai.paca.jni.SWIGTYPE_p_paca_engine;
import ai.paca.jni.SWIGTYPE_p_paca_model;
import ai.paca.jni.paca_native;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * Many requests on one model at once (paca_engine): a native scheduler thread runs each step
 * over every running request together (continuous batching), prompts sharing a prefix share its
 * KV cache, and a request gets the tokens Model.complete gives the same prompt and options (seed
 * included), whatever else runs beside it. Thread-safe. Close it (try-with-resources): that
 * cancels whatever still runs, and a thread waiting on one of its requests gets
 * IllegalStateException. Closing twice is harmless; the model's native memory stays until its
 * engines are closed.
 */
public final class Engine implements AutoCloseable {
  /** How long one native wait lasts at most, so that close() and interrupts are noticed. */
  static final int SLICE_MS = 100;

  private final Model model;
  private SWIGTYPE_p_paca_engine handle;  // null once closed (written under the write lock)
  // native calls hold the read lock, close() the write lock: close never frees under a call
  private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
  // requests closed before their end: cancelled, their remaining events taken at later submits
  private final ConcurrentLinkedQueue<Long> abandoned = new ConcurrentLinkedQueue<>();

  public Engine(Model model) {
    this(model, new EngineOptions());
  }

  /** Throws PacaException (INVALID_ARGUMENT naming the setting) for settings out of range. */
  public Engine(Model model, EngineOptions options) {
    SWIGTYPE_p_paca_model m = model.retain();
    EngineParams p = options.toNative();
    SWIGTYPE_p_paca_engine h;
    try {
      h = paca_native.engine_create(m, p);
      Native.check();
    } catch (RuntimeException e) {
      model.release();
      throw e;
    } finally {
      p.delete();
    }
    this.model = model;
    handle = h;
    Native.opened();
  }

  /** The handle, under the read lock held by the caller. */
  private SWIGTYPE_p_paca_engine handle() {
    if (handle == null) throw new IllegalStateException("the engine is closed");
    return handle;
  }

  /** Queues a request for the continuation of prompt (tokenized with BOS). */
  public Request submit(String prompt, GenerateOptions options) {
    return submit(model.tokenize(prompt), options, new RequestOptions());
  }

  public Request submit(String prompt, GenerateOptions options, RequestOptions request) {
    return submit(model.tokenize(prompt), options, request);
  }

  public Request submit(int[] prompt, GenerateOptions options) {
    return submit(prompt, options, new RequestOptions());
  }

  /**
   * Queues a request: generate after the prompt's token ids with options (sampling and stop
   * settings, as Model.complete) and request (priority, logprobs). Throws PacaException:
   * INVALID_ARGUMENT (a bad id or setting, named), CONTEXT_FULL (the prompt does not fit), BUSY
   * (maxQueued requests wait).
   */
  public Request submit(int[] prompt, GenerateOptions options, RequestOptions request) {
    reap();
    IntVector ids = Native.ids(prompt);
    GenerateParams gp = (options == null ? new GenerateOptions() : options).toNative();
    RequestParams rp = (request == null ? new RequestOptions() : request).toNative();
    long id;
    lock.readLock().lock();
    try {
      id = paca_native.engine_submit(handle(), ids, gp, rp);
      Native.check();
    } finally {
      lock.readLock().unlock();
      gp.delete();
      rp.delete();
      ids.delete();
    }
    return new Request(this, id, request.logprobs);
  }

  /** With manualStep: runs one scheduling step on this thread; the requests running or waiting after it. */
  public long step() {
    lock.readLock().lock();
    try {
      long n = paca_native.engine_step(handle());
      Native.check();
      return n;
    } finally {
      lock.readLock().unlock();
    }
  }

  /** The engine's counters so far. */
  public EngineStats stats() {
    EngineCounters c = new EngineCounters();
    lock.readLock().lock();
    try {
      paca_native.engine_stats(handle(), c);
      Native.check();
      return new EngineStats(c);
    } finally {
      lock.readLock().unlock();
      c.delete();
    }
  }

  void cancel(long id) {
    lock.readLock().lock();
    try {
      paca_native.engine_cancel(handle(), id);
      Native.check();
    } finally {
      lock.readLock().unlock();
    }
  }

  /**
   * One native poll of request id for at most timeoutMs (<= SLICE_MS): the event, or null on
   * timeout. Throws PacaException for an unknown id, IllegalStateException once closed.
   */
  RequestEvent pollOnce(long id, int timeoutMs) {
    EngineEvent ev = new EngineEvent();
    lock.readLock().lock();
    try {
      int s = paca_native.engine_poll(handle(), id, timeoutMs, ev);
      if (s == PacaException.TIMEOUT) return null;
      Native.check();
      return new RequestEvent(ev);
    } finally {
      lock.readLock().unlock();
      ev.delete();
    }
  }

  boolean closed() {
    return handle == null;
  }

  void abandon(long id) {
    abandoned.add(id);
  }

  // Takes, without waiting, the events of requests closed before their end, so that the engine
  // forgets them; each id is taken by one thread at a time (one poller per request).
  private void reap() {
    for (int n = abandoned.size(); n > 0; --n) {
      Long id = abandoned.poll();
      if (id == null) return;
      try {
        RequestEvent ev;
        while ((ev = pollOnce(id, 0)) != null && !ev.last) {}
        if (ev == null) abandoned.add(id);
      } catch (RuntimeException e) {
        // already forgotten, or the engine is closed
      }
    }
  }

  @Override
  public void close() {
    lock.writeLock().lock();
    try {
      if (handle == null) return;
      paca_native.engine_free(handle);
      handle = null;
      Native.closed();
    } finally {
      lock.writeLock().unlock();
    }
    model.release();
  }
}

package ai.paca;

import ai.paca.jni.ByteVectorList;
import ai.paca.jni.SWIGTYPE_p_paca_stop_matcher;
import ai.paca.jni.StopFeed;
import ai.paca.jni.paca_native;

/**
 * Finds stop strings in streamed text (paca_stop_matcher): feed it each piece; it returns what is
 * safe to show, holding back a suffix that could start a stop string, and after the first
 * complete stop string returns nothing more. One thread at a time. Closing twice is harmless.
 */
public final class StopMatcher implements AutoCloseable {
  private SWIGTYPE_p_paca_stop_matcher handle;
  private int stopIndex = -1;

  /** A matcher for stops (none: text passes through); an empty stop string is PacaException INVALID_ARGUMENT. */
  public StopMatcher(String... stops) {
    if (stops == null) throw new PacaException(PacaException.INVALID_ARGUMENT, "stops is null");
    ByteVectorList list = new ByteVectorList();
    try {
      for (String s : stops) list.add(Native.bytes(s));
      SWIGTYPE_p_paca_stop_matcher h = paca_native.stop_matcher_create(list);
      Native.check();
      handle = h;
    } finally {
      list.delete();
    }
    Native.opened();
  }

  private SWIGTYPE_p_paca_stop_matcher handle() {
    if (handle == null) throw new IllegalStateException("the stop matcher is closed");
    return handle;
  }

  /** Feeds a piece of text; returns the text to show now (possibly ""). */
  public String feed(String text) {
    StopFeed f = paca_native.stop_matcher_feed(handle(), Native.bytes(text));
    try {
      Native.check();
      stopIndex = f.getStop_index();
      return Native.string(f.getText());
    } finally {
      f.delete();
    }
  }

  /** The index of the stop string that matched, or -1. */
  public int stopIndex() {
    return stopIndex;
  }

  /** Ends a generation that stopped for another reason: the held-back text ("" after a match). */
  public String flush() {
    String s = Native.string(paca_native.stop_matcher_flush(handle()));
    Native.check();
    return s;
  }

  /** Forgets held text and any match, for a new generation. */
  public void reset() {
    paca_native.stop_matcher_reset(handle());
    stopIndex = -1;
  }

  @Override
  public void close() {
    if (handle != null) {
      paca_native.stop_matcher_free(handle);
      handle = null;
      Native.closed();
    }
  }
}

package ai.paca;

import ai.paca.jni.SWIGTYPE_p_paca_detokenizer;
import ai.paca.jni.paca_native;

/**
 * Streaming detokenizer (paca_detokenizer): push a generation's ids one at a time and get the
 * text each completes; bytes of a character split across tokens are held back until it is whole.
 * One text and one thread at a time; it may outlive its Model. Closing twice is harmless.
 */
public final class Detokenizer implements AutoCloseable {
  private SWIGTYPE_p_paca_detokenizer handle;

  /** special: control tokens give their text; keepLeadingSpace: the ids continue an earlier text (Llama 2). */
  public Detokenizer(Model model, boolean special, boolean keepLeadingSpace) {
    SWIGTYPE_p_paca_detokenizer h =
        paca_native.detokenizer_create(Native.require(model, "model").handle(), (special ? 1 : 0) | (keepLeadingSpace ? 2 : 0));
    Native.check();
    handle = h;
    Native.opened();
  }

  public Detokenizer(Model model) {
    this(model, false, false);
  }

  private SWIGTYPE_p_paca_detokenizer handle() {
    if (handle == null) throw new IllegalStateException("the detokenizer is closed");
    return handle;
  }

  /** The text id completes (often ""); an id outside the vocabulary is PacaException INVALID_ARGUMENT. */
  public String push(int id) {
    String s = Native.string(paca_native.detokenizer_push(handle(), id));
    Native.check();
    return s;
  }

  /** Ends the text: what is still held back (an unfinished character as U+FFFD); the next push starts anew. */
  public String flush() {
    String s = Native.string(paca_native.detokenizer_flush(handle()));
    Native.check();
    return s;
  }

  @Override
  public void close() {
    if (handle != null) {
      paca_native.detokenizer_free(handle);
      handle = null;
      Native.closed();
    }
  }
}

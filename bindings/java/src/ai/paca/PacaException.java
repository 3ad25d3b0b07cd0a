package ai.paca;

/** A paca call failed: {@link #status()} is the paca_status of paca.h, the message paca_last_error()'s text. */
public class PacaException extends RuntimeException {
  private static final long serialVersionUID = 1L;
  /** PACA_ERR_INVALID_ARGUMENT. */
  public static final int INVALID_ARGUMENT = 1;
  /** PACA_ERR_IO: a file is missing or unreadable. */
  public static final int IO = 2;
  /** PACA_ERR_FORMAT. */
  public static final int FORMAT = 3;
  /** PACA_ERR_UNSUPPORTED: well-formed, but not supported (architecture, dtype, a newer snapshot). */
  public static final int UNSUPPORTED = 4;
  /** PACA_ERR_OUT_OF_MEMORY. */
  public static final int OUT_OF_MEMORY = 5;
  /** PACA_ERR_CONTEXT_FULL. */
  public static final int CONTEXT_FULL = 6;
  /** PACA_ERR_CANCELLED: a request was cancelled (Request.cancel, Engine.close). */
  public static final int CANCELLED = 7;
  /** PACA_ERR_STATE. */
  public static final int STATE = 10;
  /** PACA_ERR_DEVICE. */
  public static final int DEVICE = 8;
  /** PACA_ERR_BUSY: a queue is full (an engine's maxQueued requests wait); try again later. */
  public static final int BUSY = 11;
  /** PACA_ERR_TIMEOUT. */
  public static final int TIMEOUT = 12;
  /** PACA_ERR_INTERNAL. */
  public static final int INTERNAL = 99;

  private final int status;

  public PacaException(int status, String message) {
    super(message);
    this.status = status;
  }

  /** The paca_status value. */
  public int status() {
    return status;
  }

  /** The status's name, e.g. "PACA_ERR_IO". */
  public String statusName() {
    return Native.statusName(status);
  }
}

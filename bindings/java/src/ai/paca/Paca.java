package ai.paca;

import ai.paca.jni.paca_native;

/** Library-wide facts. */
public final class Paca {
  private Paca() {}

  /** The library version, "MAJOR.MINOR.PATCH". */
  public static String version() {
    Native.init();
    return paca_native.version();
  }

  /** Native handles (models, sessions, generations) open right now; 0 when everything was closed. */
  public static long liveHandles() {
    return Native.live();
  }
}

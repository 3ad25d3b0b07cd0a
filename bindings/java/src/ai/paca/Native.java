package ai.paca;

import ai.paca.jni.ByteVector;
import ai.paca.jni.paca_native;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Loads the JNI library and maps statuses to exceptions. The library is found, in order: the
 * file named by the system property {@code paca.jni.library}; the copy inside the jar
 * ({@code /ai/paca/native/libpaca_jni.so}, extracted to a temporary file); {@code
 * System.loadLibrary("paca_jni")} (java.library.path).
 */
final class Native {
  private static final AtomicLong LIVE = new AtomicLong();

  static {
    load();
  }

  private Native() {}

  private static void load() {
    String explicit = System.getProperty("paca.jni.library");
    if (explicit != null) {
      System.load(explicit);
      return;
    }
    try (InputStream in = Native.class.getResourceAsStream("/ai/paca/native/libpaca_jni.so")) {
      if (in != null) {
        Path tmp = Files.createTempFile("libpaca_jni", ".so");
        tmp.toFile().deleteOnExit();
        Files.copy(in, tmp, StandardCopyOption.REPLACE_EXISTING);
        System.load(tmp.toString());
        return;
      }
    } catch (IOException e) {
      throw new UnsatisfiedLinkError("cannot extract libpaca_jni.so from the jar: " + e);
    }
    System.loadLibrary("paca_jni");
  }

  static void init() {}

  static long opened() {
    return LIVE.incrementAndGet();
  }

  static long closed() {
    return LIVE.decrementAndGet();
  }

  static long live() {
    return LIVE.get();
  }

  static String statusName(int status) {
    return paca_native.status_name(status);
  }

  /** Throws for the status of the last native call on this thread. */
  static void check() {
    int s = paca_native.last_status();
    if (s != 0) throw new PacaException(s, paca_native.last_error());
  }

  static ByteVector bytes(String s) {
    byte[] b = s.getBytes(StandardCharsets.UTF_8);
    short[] v = new short[b.length];
    for (int i = 0; i < b.length; ++i) v[i] = (short) (b[i] & 0xff);
    return new ByteVector(v);
  }

  static String string(ByteVector v) {
    byte[] b = new byte[v.size()];
    for (int i = 0; i < b.length; ++i) b[i] = (byte) (short) v.get(i);
    return new String(b, StandardCharsets.UTF_8);
  }
}

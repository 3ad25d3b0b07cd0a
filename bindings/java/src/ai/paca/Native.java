package ai.paca;

import ai.paca.jni.ByteVector;
import ai.paca.jni.FloatVector;
import ai.paca.jni.IntVector;
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

  /** o itself; a null o is PacaException INVALID_ARGUMENT naming what. */
  static <T> T require(T o, String what) {
    if (o == null) throw new PacaException(PacaException.INVALID_ARGUMENT, what + " is null");
    return o;
  }

  /** s as UTF-8 bytes; a null s is PacaException INVALID_ARGUMENT. */
  static ByteVector bytes(String s) {
    if (s == null) throw new PacaException(PacaException.INVALID_ARGUMENT, "a string argument is null");
    return bytes(s.getBytes(StandardCharsets.UTF_8));
  }

  static ByteVector bytes(byte[] b) {
    if (b == null) throw new PacaException(PacaException.INVALID_ARGUMENT, "a byte[] argument is null");
    short[] v = new short[b.length];
    for (int i = 0; i < b.length; ++i) v[i] = (short) (b[i] & 0xff);
    return new ByteVector(v);
  }

  /** An optional text: null as no bytes (the layer's "unset"). */
  static ByteVector optional(String s) {
    return s == null ? new ByteVector() : bytes(s);
  }

  static IntVector ids(int[] a) {
    if (a == null) throw new PacaException(PacaException.INVALID_ARGUMENT, "an int[] argument is null");
    return new IntVector(a);
  }

  static FloatVector floats(float[] a) {
    if (a == null) throw new PacaException(PacaException.INVALID_ARGUMENT, "a float[] argument is null");
    return new FloatVector(a);
  }

  static byte[] byteArray(ByteVector v) {
    byte[] b = new byte[v.size()];
    for (int i = 0; i < b.length; ++i) b[i] = (byte) (short) v.get(i);
    v.delete();
    return b;
  }

  static String string(ByteVector v) {
    return new String(byteArray(v), StandardCharsets.UTF_8);
  }

  static int[] array(IntVector v) {
    int[] a = new int[v.size()];
    for (int i = 0; i < a.length; ++i) a[i] = v.get(i);
    v.delete();
    return a;
  }

  static float[] array(FloatVector v) {
    float[] a = new float[v.size()];
    for (int i = 0; i < a.length; ++i) a[i] = v.get(i);
    v.delete();
    return a;
  }
}

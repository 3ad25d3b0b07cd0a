package ai.paca;

/** The bits of Model.tokenAttributes (paca_token_attr; values pinned). */
public final class TokenAttributes {
  private TokenAttributes() {}

  public static final int NORMAL = 1;
  public static final int UNKNOWN = 2;
  /** A control token: BOS, EOS, <|eot_id|>, reserved ... */
  public static final int CONTROL = 4;
  public static final int USER_DEFINED = 8;
  /** Unused, or a padding id past the tokenizer's vocabulary. */
  public static final int UNUSED = 16;
  /** A byte-fallback token <0xNN>. */
  public static final int BYTE = 32;
  public static final int BOS = 64;
  /** Ends generation (EOS, EOT, EOM). */
  public static final int EOG = 128;
}

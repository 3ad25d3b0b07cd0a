package ai.paca;

/** A session loaded from a snapshot and the sampler stored with it (null when none); closing closes both. */
public final class LoadedSession implements AutoCloseable {
  private final Session session;
  private final Sampler sampler;

  LoadedSession(Session session, Sampler sampler) {
    this.session = session;
    this.sampler = sampler;
  }

  public Session session() {
    return session;
  }

  /** The stored sampler, or null when the snapshot has none. */
  public Sampler sampler() {
    return sampler;
  }

  @Override
  public void close() {
    session.close();
    if (sampler != null) sampler.close();
  }
}

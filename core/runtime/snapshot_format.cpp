// snapshot_format.cpp - see snapshot_format.h.
#include "runtime/snapshot_format.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>

#include "format/config.h"
#include "util/error.h"

static_assert(std::endian::native == std::endian::little, "snapshots are written in host order, little-endian");

namespace paca {

namespace snapshot_testing {
void (*after_step)(const char* step) = nullptr;
}

namespace {

constexpr char kMagic[8] = {'P', 'A', 'C', 'A', 'S', 'N', 'A', 'P'};
constexpr uint32_t kFlagByteSplit = 1;
constexpr uint32_t kCodecZstd = 1;
constexpr uint32_t kMaxSections = 16;
constexpr uint64_t kMaxSamplerBytes = 64ull << 20;

enum SectionKind : uint32_t { kTokens = 1, kLogits = 2, kKv = 3, kSampler = 4 };

const char* kind_name(uint32_t k) {
  switch (k) {
    case kTokens: return "tokens";
    case kLogits: return "logits";
    case kKv: return "kv";
    case kSampler: return "sampler";
  }
  return "unknown";
}

struct Header {
  char magic[8];
  uint32_t version;
  uint32_t flags;
  uint64_t fingerprint;
  uint32_t kv_dtype;  // DType value
  uint32_t n_layers;
  uint32_t kv_dim;
  uint32_t n_vocab;
  uint64_t n_tokens;
  uint64_t n_ctx;
  uint32_t n_sections;
  uint32_t reserved;
};
static_assert(sizeof(Header) == 64);
constexpr size_t kHeaderBytes = sizeof(Header);

struct SectionEntry {
  uint32_t kind;
  uint32_t codec;
  uint64_t offset;
  uint64_t stored;  // bytes in the file
  uint64_t raw;     // bytes once decompressed
  uint64_t hash;    // Hash64 of the stored bytes
};
static_assert(sizeof(SectionEntry) == 40);

// A streaming 64-bit hash (multiply-xorshift over 8-byte words, the length
// mixed in at the end, then a final avalanche). Not cryptographic: it catches
// corruption, not forgery.
class Hash64 {
 public:
  void update(const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    n_ += n;
    for (; fill_ > 0 && n > 0; --n) push(*p++);
    for (; n >= 8; n -= 8, p += 8) word(load(p));
    for (; n > 0; --n) push(*p++);
  }
  uint64_t digest() const {
    Hash64 h = *this;
    if (h.fill_ > 0) h.word(h.pending_);
    h.word(n_);
    uint64_t x = h.h_;
    x ^= x >> 33;
    x *= 0xFF51AFD7ED558CCDull;
    x ^= x >> 33;
    x *= 0xC4CEB9FE1A85EC53ull;
    x ^= x >> 33;
    return x;
  }
  static uint64_t of(const void* data, size_t n) {
    Hash64 h;
    h.update(data, n);
    return h.digest();
  }

 private:
  static uint64_t load(const uint8_t* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
  }
  void word(uint64_t v) {
    h_ = (h_ ^ v) * 0x9E3779B97F4A7C15ull;
    h_ ^= h_ >> 29;
  }
  // bytes of a partial word, little-endian as load() reads them
  void push(uint8_t b) {
    pending_ |= uint64_t{b} << (8 * fill_);
    if (++fill_ == 8) {
      word(pending_);
      pending_ = 0;
      fill_ = 0;
    }
  }
  uint64_t h_ = 0xCBF29CE484222325ull;
  uint64_t n_ = 0;
  uint64_t pending_ = 0;
  unsigned fill_ = 0;
};

size_t table_end(uint32_t n_sections) { return kHeaderBytes + size_t{n_sections} * sizeof(SectionEntry); }

void step(const char* name) {
  if (snapshot_testing::after_step != nullptr) snapshot_testing::after_step(name);
}

// ---- byte planes ------------------------------------------------------------

// in: n elements of e bytes; out: e planes of n bytes, most significant first.
void split_planes(const uint8_t* in, uint8_t* out, size_t n, size_t e) {
  if (n == 0) return;  // the buffers may be null
  for (size_t b = 0; b < e; ++b) {
    const uint8_t* src = in + (e - 1 - b);
    uint8_t* dst = out + b * n;
    for (size_t i = 0; i < n; ++i) dst[i] = src[i * e];
  }
}

void join_planes(const uint8_t* in, uint8_t* out, size_t n, size_t e) {
  if (n == 0) return;  // the buffers may be null
  for (size_t b = 0; b < e; ++b) {
    const uint8_t* src = in + b * n;
    uint8_t* dst = out + (e - 1 - b);
    for (size_t i = 0; i < n; ++i) dst[i * e] = src[i];
  }
}

// ---- writing ----------------------------------------------------------------

// A file written under a temporary name and renamed into place by commit().
class AtomicFile {
 public:
  // The temporary name is unique per process and call, so threads saving to
  // one path do not write into each other's file (the last rename wins).
  explicit AtomicFile(const std::string& path)
      : path_(path), tmp_(path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(next_id())) {
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) fail(Status::io, "cannot create '{}': {}", tmp_, std::strerror(errno));
    try {
      step("open");
    } catch (...) {  // the destructor does not run for a constructor that throws
      ::close(fd_);
      ::unlink(tmp_.c_str());
      throw;
    }
  }
  ~AtomicFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(tmp_.c_str());
  }
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  uint64_t offset() const { return offset_; }

  void write(const void* data, size_t n) {
    write_at(data, n, offset_);
    offset_ += n;
    step("write");
  }

  void write_at(const void* data, size_t n, uint64_t at) {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      ssize_t w = ::pwrite(fd_, p, n, static_cast<off_t>(at));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) fail(Status::io, "cannot write '{}': {}", tmp_, w < 0 ? std::strerror(errno) : "no progress");
      p += w;
      n -= static_cast<size_t>(w);
      at += static_cast<uint64_t>(w);
    }
  }

  void commit() {
    if (::fsync(fd_) != 0) fail(Status::io, "cannot flush '{}': {}", tmp_, std::strerror(errno));
    step("fsync");
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail(Status::io, "cannot close '{}': {}", tmp_, std::strerror(errno));
    step("close");
    if (::rename(tmp_.c_str(), path_.c_str()) != 0)
      fail(Status::io, "cannot rename '{}' to '{}': {}", tmp_, path_, std::strerror(errno));
    committed_ = true;
    step("rename");
    // The rename is durable once the folder is flushed.
    const size_t slash = path_.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path_.substr(0, slash);
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) fail(Status::io, "cannot open folder '{}' to flush it: {}", dir, std::strerror(errno));
    const int rc = ::fsync(dfd);
    const int e = errno;
    ::close(dfd);
    if (rc != 0) fail(Status::io, "cannot flush folder '{}': {}", dir, std::strerror(e));
    step("dirsync");
  }

 private:
  static uint64_t next_id() {
    static std::atomic<uint64_t> id{0};
    return id.fetch_add(1);
  }
  std::string path_, tmp_;
  int fd_ = -1;
  uint64_t offset_ = 0;
  bool committed_ = false;
};

struct CCtx {
  ZSTD_CCtx* p = ZSTD_createCCtx();
  ~CCtx() { ZSTD_freeCCtx(p); }
};
struct DCtx {
  ZSTD_DCtx* p = ZSTD_createDCtx();
  ~DCtx() { ZSTD_freeDCtx(p); }
};

void zcheck(size_t rc, const char* what) {
  if (ZSTD_isError(rc)) fail(Status::internal, "zstd {}: {}", what, ZSTD_getErrorName(rc));
}

// Streams one zstd frame of `raw` bytes (given in pieces by feed) into f.
class FrameWriter {
 public:
  FrameWriter(AtomicFile& f, int level, uint64_t raw) : f_(f), out_(ZSTD_CStreamOutSize()) {
    if (cctx_.p == nullptr) throw std::bad_alloc();
    zcheck(ZSTD_CCtx_setParameter(cctx_.p, ZSTD_c_compressionLevel, level), "level");
    zcheck(ZSTD_CCtx_setParameter(cctx_.p, ZSTD_c_checksumFlag, 1), "checksum flag");
    zcheck(ZSTD_CCtx_setParameter(cctx_.p, ZSTD_c_contentSizeFlag, 1), "content size flag");
    zcheck(ZSTD_CCtx_setPledgedSrcSize(cctx_.p, raw), "pledged size");
    start_ = f.offset();
  }
  void feed(const void* data, size_t n) { pump(data, n, ZSTD_e_continue); }
  // Ends the frame; fills in its place, size and hash in the file.
  void finish(SectionEntry& e) {
    pump(nullptr, 0, ZSTD_e_end);
    e.offset = start_;
    e.stored = f_.offset() - start_;
    e.hash = hash_.digest();
  }

 private:
  void pump(const void* data, size_t n, ZSTD_EndDirective mode) {
    ZSTD_inBuffer in{data, n, 0};
    for (;;) {
      ZSTD_outBuffer out{out_.data(), out_.size(), 0};
      const size_t left = ZSTD_compressStream2(cctx_.p, &out, &in, mode);
      zcheck(left, "compress");
      if (out.pos > 0) {
        hash_.update(out_.data(), out.pos);
        f_.write(out_.data(), out.pos);
      }
      if (mode == ZSTD_e_end ? left == 0 : in.pos == in.size) return;
    }
  }
  AtomicFile& f_;
  CCtx cctx_;
  Hash64 hash_;
  std::vector<uint8_t> out_;
  uint64_t start_ = 0;
};

template <typename T>
void put(std::vector<uint8_t>& out, const T& v) {
  const auto* p = reinterpret_cast<const uint8_t*>(&v);
  out.insert(out.end(), p, p + sizeof v);
}

std::vector<uint8_t> encode_sampler(const SamplerRecord& r) {
  std::vector<uint8_t> b;
  const SamplerParams& p = r.params;
  put(b, uint32_t{1});  // record version
  put(b, p.temperature);
  put(b, p.top_k);
  put(b, p.top_p);
  put(b, p.min_p);
  put(b, p.repeat_penalty);
  put(b, p.frequency_penalty);
  put(b, p.presence_penalty);
  put(b, p.repeat_last_n);
  put(b, p.seed);
  put(b, r.n_top_logprobs);
  put(b, r.max_new_tokens);
  put(b, uint32_t{r.ignore_eos ? 1u : 0u});
  put(b, static_cast<uint32_t>(r.stop_ids.size()));
  for (int32_t id : r.stop_ids) put(b, id);
  put(b, static_cast<uint32_t>(r.logit_bias.size()));
  for (const auto& [id, bias] : r.logit_bias) {
    put(b, id);
    put(b, bias);
  }
  return b;
}

// Reads fixed-size fields from a byte string, failing on overrun.
struct Cursor {
  std::span<const uint8_t> b;
  size_t at = 0;
  const std::string& what;
  template <typename T>
  T get() {
    check(b.size() - at >= sizeof(T), Status::format, "{}: the sampler record is truncated", what);
    T v;
    std::memcpy(&v, b.data() + at, sizeof v);
    at += sizeof v;
    return v;
  }
};

SamplerRecord decode_sampler(std::span<const uint8_t> b, int32_t n_vocab, const std::string& what) {
  Cursor c{b, 0, what};
  const uint32_t version = c.get<uint32_t>();
  check(version == 1, Status::unsupported, "{}: sampler record version {} is not supported (1 is)", what, version);
  SamplerRecord r;
  SamplerParams& p = r.params;
  p.temperature = c.get<float>();
  p.top_k = c.get<int32_t>();
  p.top_p = c.get<float>();
  p.min_p = c.get<float>();
  p.repeat_penalty = c.get<float>();
  p.frequency_penalty = c.get<float>();
  p.presence_penalty = c.get<float>();
  p.repeat_last_n = c.get<int32_t>();
  p.seed = c.get<uint64_t>();
  r.n_top_logprobs = c.get<int32_t>();
  r.max_new_tokens = c.get<uint64_t>();
  const uint32_t ignore_eos = c.get<uint32_t>();
  try {
    p.validate();
  } catch (const Error& e) {
    fail(Status::format, "{}: the sampler record is invalid: {}", what, e.what());
  }
  check(r.n_top_logprobs >= 0 && r.n_top_logprobs <= 20 && ignore_eos <= 1, Status::format,
        "{}: the sampler record is invalid (n_top_logprobs {}, ignore_eos {})", what, r.n_top_logprobs, ignore_eos);
  r.ignore_eos = ignore_eos == 1;
  const uint32_t n_stop = c.get<uint32_t>();
  check(n_stop <= static_cast<uint32_t>(n_vocab), Status::format, "{}: the sampler record lists {} stop ids", what,
        n_stop);
  for (uint32_t i = 0; i < n_stop; ++i) {
    const int32_t id = c.get<int32_t>();
    check(id >= 0 && id < n_vocab, Status::format, "{}: sampler stop id {} is outside the vocabulary", what, id);
    r.stop_ids.push_back(id);
  }
  const uint32_t n_bias = c.get<uint32_t>();
  check(n_bias <= static_cast<uint32_t>(n_vocab), Status::format, "{}: the sampler record lists {} biases", what,
        n_bias);
  for (uint32_t i = 0; i < n_bias; ++i) {
    const int32_t id = c.get<int32_t>();
    const float bias = c.get<float>();
    check(id >= 0 && id < n_vocab && (std::isfinite(bias) || bias == -INFINITY), Status::format,
          "{}: sampler bias entry {} is invalid (id {})", what, i, id);
    r.logit_bias.emplace_back(id, bias);
  }
  check(c.at == b.size(), Status::format, "{}: {} unexpected bytes after the sampler record", what, b.size() - c.at);
  return r;
}

// ---- reading ----------------------------------------------------------------

uint64_t header_hash(std::span<const uint8_t> file, uint32_t n_sections) {
  return Hash64::of(file.data(), table_end(n_sections));
}

void corrupt(size_t rc, const std::string& what, const SectionEntry& e) {
  fail(Status::format, "{}: section {} is corrupt: {}", what, kind_name(e.kind), ZSTD_getErrorName(rc));
}

// Checks that a section is exactly one zstd frame that declares its content
// size (= e.raw) and a content checksum.
std::span<const uint8_t> frame_of(std::span<const uint8_t> file, const SectionEntry& e, const std::string& what) {
  std::span<const uint8_t> src = file.subspan(e.offset, e.stored);
  check(Hash64::of(src.data(), src.size()) == e.hash, Status::format,
        "{}: the checksum of section {} does not match (the file is corrupt)", what, kind_name(e.kind));
  // A zstd frame: magic 0xFD2FB528, then the frame header descriptor, whose
  // bit 2 says whether the frame ends with a content checksum.
  constexpr uint8_t kZstdMagic[4] = {0x28, 0xB5, 0x2F, 0xFD};
  check(src.size() >= 5 && std::memcmp(src.data(), kZstdMagic, 4) == 0, Status::format,
        "{}: section {} is not a zstd frame (corrupt)", what, kind_name(e.kind));
  const unsigned long long content = ZSTD_getFrameContentSize(src.data(), src.size());
  check(content == e.raw && (src[4] & 4) != 0, Status::format,
        "{}: section {}'s zstd frame does not declare its size and checksum (corrupt)", what, kind_name(e.kind));
  const size_t frame = ZSTD_findFrameCompressedSize(src.data(), src.size());
  check(!ZSTD_isError(frame) && frame == src.size(), Status::format,
        "{}: section {} is not one whole zstd frame (corrupt)", what, kind_name(e.kind));
  return src;
}

std::vector<uint8_t> read_small(std::span<const uint8_t> file, const SectionEntry& e, const std::string& what) {
  std::span<const uint8_t> src = frame_of(file, e, what);
  std::vector<uint8_t> out(static_cast<size_t>(e.raw) + 1);  // never empty; the last byte stays unused
  DCtx d;
  if (d.p == nullptr) throw std::bad_alloc();
  const size_t rc = ZSTD_decompressDCtx(d.p, out.data(), static_cast<size_t>(e.raw), src.data(), src.size());
  if (ZSTD_isError(rc)) corrupt(rc, what, e);
  check(rc == e.raw, Status::format, "{}: section {} decompressed to {} bytes, {} expected", what, kind_name(e.kind), rc,
        e.raw);
  out.pop_back();
  return out;
}

}  // namespace

struct SnapshotReader::Parsed {
  Header h{};
  std::vector<SectionEntry> sections;
  size_t elem_bytes = 4;
  const SectionEntry* find(uint32_t kind) const {
    for (const auto& s : sections)
      if (s.kind == kind) return &s;
    return nullptr;
  }
};

SnapshotReader::~SnapshotReader() = default;

// Checks everything the header says against itself, the input's length and
// `expect`, before any section is touched.
SnapshotReader::SnapshotReader(std::span<const uint8_t> file, const SnapshotShape& expect, std::string what)
    : file_(file), what_(std::move(what)), p_(std::make_unique<Parsed>()) {
  Parsed& p = *p_;
  check(file.size() >= sizeof kMagic && std::memcmp(file.data(), kMagic, sizeof kMagic) == 0, Status::format,
        "{} is not a paca session snapshot (it does not start with \"PACASNAP\")", what_);
  check(file.size() >= kHeaderBytes, Status::format, "{} is truncated: {} bytes, shorter than the {}-byte header",
        what_, file.size(), kHeaderBytes);
  Header& h = p.h;
  std::memcpy(&h, file.data(), sizeof h);
  check(h.version <= kSnapshotVersion, Status::unsupported,
        "{}: snapshot format version {} is newer than this library reads ({})", what_, h.version, kSnapshotVersion);
  check(h.version >= 1, Status::format, "{}: snapshot format version 0 does not exist (the header is corrupt)", what_);
  check(h.n_sections >= 1 && h.n_sections <= kMaxSections, Status::format,
        "{}: the header declares {} sections (1..{} allowed; the header is corrupt)", what_, h.n_sections, kMaxSections);
  const size_t hash_at = table_end(h.n_sections);
  check(file.size() >= hash_at + 8, Status::format, "{} is truncated: {} bytes, the header and section table need {}",
        what_, file.size(), hash_at + 8);
  uint64_t stored_hash;
  std::memcpy(&stored_hash, file.data() + hash_at, 8);
  check(stored_hash == header_hash(file, h.n_sections), Status::format,
        "{}: the header checksum does not match (the file is corrupt)", what_);
  check(h.flags <= kFlagByteSplit && h.reserved == 0, Status::unsupported,
        "{}: unknown header flags {:#x} / {:#x} (written by a newer library?)", what_, h.flags, h.reserved);

  check(h.fingerprint == expect.fingerprint, Status::invalid_argument,
        "{} was saved from a different model (model fingerprint {:016x}; this model's is {:016x})", what_,
        h.fingerprint, expect.fingerprint);
  check(h.n_layers == expect.n_layers && h.kv_dim == expect.kv_dim && h.n_vocab == expect.n_vocab, Status::format,
        "{}: the header's shapes (layers {}, kv dim {}, vocab {}) do not match the model's", what_, h.n_layers,
        h.kv_dim, h.n_vocab);
  auto kv_name = [](uint32_t t) {
    return t == static_cast<uint32_t>(DType::bf16) ? "bf16" : t == static_cast<uint32_t>(DType::f32) ? "f32" : "unknown";
  };
  check(h.kv_dtype == expect.kv_dtype, Status::unsupported,
        "{}: the snapshot's KV cache is {}, the model's is {} (load the model with the same kv_dtype)", what_,
        kv_name(h.kv_dtype), kv_name(expect.kv_dtype));
  p.elem_bytes = expect.elem_bytes;
  check(h.n_ctx >= 1 && h.n_ctx <= static_cast<uint64_t>(ConfigLimits::max_context) && h.n_tokens <= h.n_ctx,
        Status::format, "{}: absurd sizes in the header ({} tokens in a context of {})", what_, h.n_tokens, h.n_ctx);

  // all products are small: n_tokens <= 2^24, and the shapes are the model's
  const uint64_t expect_raw[5] = {0, h.n_tokens * 4, uint64_t{h.n_vocab} * 4,
                                  uint64_t{h.n_layers} * 2 * h.n_tokens * h.kv_dim * p.elem_bytes, 0};
  uint64_t end = hash_at + 8;
  for (uint32_t i = 0; i < h.n_sections; ++i) {
    SectionEntry e;
    std::memcpy(&e, file.data() + kHeaderBytes + i * sizeof e, sizeof e);
    const char* name = kind_name(e.kind);
    check(e.kind >= kTokens && e.kind <= kSampler, Status::unsupported, "{}: unknown section kind {}", what_, e.kind);
    check(p.find(e.kind) == nullptr, Status::format, "{}: section {} appears twice", what_, name);
    check(e.codec == kCodecZstd, Status::unsupported, "{}: section {} uses unknown codec {}", what_, name, e.codec);
    if (e.kind == kSampler)
      check(e.raw <= kMaxSamplerBytes, Status::format, "{}: absurd sampler section size {}", what_, e.raw);
    else
      check(e.raw == expect_raw[e.kind], Status::format, "{}: section {} holds {} bytes, the header implies {}", what_,
            name, e.raw, expect_raw[e.kind]);
    check(e.offset == end, Status::format, "{}: section {} starts at byte {}, expected {}", what_, name, e.offset, end);
    check(e.stored <= file.size() && e.offset <= file.size() - e.stored, Status::format,
          "{} is truncated: section {} needs bytes [{}, {}) of a {}-byte file", what_, name, e.offset,
          e.offset + e.stored, file.size());
    check(e.stored <= ZSTD_compressBound(e.raw) + 64, Status::format,
          "{}: section {} is {} bytes, more than {} raw bytes can compress to", what_, name, e.stored, e.raw);
    end = e.offset + e.stored;
    p.sections.push_back(e);
  }
  check(end == file.size(), Status::format, "{}: {} unexpected bytes after the last section", what_,
        file.size() - end);
  check(p.find(kTokens) != nullptr && p.find(kKv) != nullptr, Status::format,
        "{}: the tokens or kv section is missing", what_);
  check(p.find(kLogits) == nullptr || h.n_tokens > 0, Status::format, "{}: logits without tokens (corrupt)", what_);
}

uint64_t SnapshotReader::n_tokens() const { return p_->h.n_tokens; }
uint64_t SnapshotReader::n_ctx() const { return p_->h.n_ctx; }

std::vector<int32_t> SnapshotReader::tokens() const {
  std::vector<uint8_t> raw = read_small(file_, *p_->find(kTokens), what_);
  std::vector<int32_t> tokens(static_cast<size_t>(p_->h.n_tokens));
  if (!tokens.empty()) std::memcpy(tokens.data(), raw.data(), tokens.size() * sizeof(int32_t));
  for (size_t i = 0; i < tokens.size(); ++i)
    check(tokens[i] >= 0 && static_cast<uint32_t>(tokens[i]) < p_->h.n_vocab, Status::format,
          "{}: token {} at index {} is outside the vocabulary (corrupt)", what_, tokens[i], i);
  return tokens;
}

std::vector<float> SnapshotReader::logits() const {
  std::vector<float> logits;
  if (const SectionEntry* e = p_->find(kLogits)) {
    std::vector<uint8_t> raw = read_small(file_, *e, what_);
    logits.resize(p_->h.n_vocab);
    std::memcpy(logits.data(), raw.data(), logits.size() * sizeof(float));
  }
  return logits;
}

std::optional<SamplerRecord> SnapshotReader::sampler() const {
  if (const SectionEntry* e = p_->find(kSampler))
    return decode_sampler(read_small(file_, *e, what_), static_cast<int32_t>(p_->h.n_vocab), what_);
  return std::nullopt;
}

void SnapshotReader::read_kv(const PlaneSink& sink) const {
  const Parsed& p = *p_;
  const SectionEntry& e = *p.find(kKv);
  std::span<const uint8_t> src = frame_of(file_, e, what_);
  const size_t elems = static_cast<size_t>(p.h.n_tokens) * p.h.kv_dim, elem = p.elem_bytes;
  const size_t plane = elems * elem;
  const bool split = (p.h.flags & kFlagByteSplit) != 0;
  std::vector<uint8_t> buf(plane), joined(split ? plane : 0);
  DCtx d;
  if (d.p == nullptr) throw std::bad_alloc();
  ZSTD_inBuffer in{src.data(), src.size(), 0};
  size_t last = 1;
  for (uint32_t layer = 0; layer < p.h.n_layers; ++layer)
    for (int is_v = 0; is_v < 2; ++is_v) {
      ZSTD_outBuffer out{buf.data(), buf.size(), 0};
      while (out.pos < out.size) {
        const size_t in_before = in.pos, out_before = out.pos;
        last = ZSTD_decompressStream(d.p, &out, &in);
        if (ZSTD_isError(last)) corrupt(last, what_, e);
        check(in.pos != in_before || out.pos != out_before, Status::format, "{}: section kv ends early (corrupt)",
              what_);
      }
      if (split) join_planes(buf.data(), joined.data(), elems, elem);
      sink(static_cast<int>(layer), is_v, split ? joined.data() : buf.data());
    }
  // The frame must end exactly here: zstd verifies the checksum at its end.
  while (last != 0) {
    uint8_t extra = 0;
    ZSTD_outBuffer out{&extra, 1, 0};
    const size_t in_before = in.pos;
    last = ZSTD_decompressStream(d.p, &out, &in);
    if (ZSTD_isError(last)) corrupt(last, what_, e);
    check(out.pos == 0, Status::format, "{}: section kv holds more data than declared (corrupt)", what_);
    check(last == 0 || in.pos != in_before, Status::format, "{}: section kv ends early (corrupt)", what_);
  }
  check(in.pos == in.size, Status::format, "{}: section kv has trailing bytes (corrupt)", what_);
}

// ---- writing ----------------------------------------------------------------

void write_snapshot_file(const std::string& path, const SnapshotContents& c, const SnapshotOptions& opt) {
  check(!path.empty(), Status::invalid_argument, "the snapshot path is empty");
  check(opt.zstd_level >= ZSTD_minCLevel() && opt.zstd_level <= ZSTD_maxCLevel(), Status::invalid_argument,
        "zstd level {} is out of range", opt.zstd_level);
  const SnapshotShape& s = c.shape;
  const size_t n = c.tokens.size(), elem = s.elem_bytes;
  check(c.logits.empty() || c.logits.size() == s.n_vocab, Status::internal, "snapshot logits of the wrong size");

  Header h{};
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  h.version = kSnapshotVersion;
  h.flags = opt.byte_split ? kFlagByteSplit : 0;
  h.fingerprint = s.fingerprint;
  h.kv_dtype = s.kv_dtype;
  h.n_layers = s.n_layers;
  h.kv_dim = s.kv_dim;
  h.n_vocab = s.n_vocab;
  h.n_tokens = n;
  h.n_ctx = c.n_ctx;
  h.n_sections = 2 + (c.logits.empty() ? 0 : 1) + (c.sampler != nullptr ? 1 : 0);
  std::vector<uint8_t> sampler_bytes;
  if (c.sampler != nullptr) sampler_bytes = encode_sampler(*c.sampler);

  AtomicFile f(path);
  std::vector<uint8_t> head(table_end(h.n_sections) + 8, 0);
  f.write(head.data(), head.size());  // placeholder, rewritten once the sections are known
  std::vector<SectionEntry> table;
  auto small = [&](uint32_t kind, const void* data, size_t bytes) {
    SectionEntry e{kind, kCodecZstd, 0, 0, bytes, 0};
    FrameWriter w(f, opt.zstd_level, bytes);
    w.feed(data, bytes);
    w.finish(e);
    table.push_back(e);
  };
  small(kTokens, c.tokens.data(), n * sizeof(int32_t));
  if (!c.logits.empty()) small(kLogits, c.logits.data(), c.logits.size() * sizeof(float));
  {
    const size_t elems = n * s.kv_dim, plane = elems * elem;
    SectionEntry e{kKv, kCodecZstd, 0, 0, plane * 2 * uint64_t{s.n_layers}, 0};
    FrameWriter w(f, opt.zstd_level, e.raw);
    std::vector<uint8_t> buf(plane), split(opt.byte_split ? plane : 0);
    for (uint32_t layer = 0; layer < s.n_layers && plane > 0; ++layer)
      for (int is_v = 0; is_v < 2; ++is_v) {
        c.kv(static_cast<int>(layer), is_v, buf.data());
        if (opt.byte_split) split_planes(buf.data(), split.data(), elems, elem);
        w.feed(opt.byte_split ? split.data() : buf.data(), plane);
      }
    w.finish(e);
    table.push_back(e);
  }
  if (c.sampler != nullptr) small(kSampler, sampler_bytes.data(), sampler_bytes.size());

  std::memcpy(head.data(), &h, sizeof h);
  std::memcpy(head.data() + kHeaderBytes, table.data(), table.size() * sizeof(SectionEntry));
  const uint64_t hash = header_hash(head, h.n_sections);
  std::memcpy(head.data() + table_end(h.n_sections), &hash, 8);
  f.write_at(head.data(), head.size(), 0);
  step("header");
  f.commit();
}

namespace snapshot_testing {

void fix_header(std::vector<uint8_t>& file, uint64_t fingerprint) {
  if (file.size() < kHeaderBytes) return;
  Header h;
  std::memcpy(&h, file.data(), sizeof h);
  h.fingerprint = fingerprint;
  std::memcpy(file.data(), &h, sizeof h);
  if (h.n_sections < 1 || h.n_sections > kMaxSections || file.size() < table_end(h.n_sections) + 8) return;
  for (uint32_t i = 0; i < h.n_sections; ++i) {
    SectionEntry e;
    std::memcpy(&e, file.data() + kHeaderBytes + i * sizeof e, sizeof e);
    if (e.stored > file.size() || e.offset > file.size() - e.stored) continue;
    e.hash = Hash64::of(file.data() + e.offset, e.stored);
    std::memcpy(file.data() + kHeaderBytes + i * sizeof e, &e, sizeof e);
  }
  const uint64_t hash = header_hash(file, h.n_sections);
  std::memcpy(file.data() + table_end(h.n_sections), &hash, 8);
}

}  // namespace snapshot_testing

}  // namespace paca

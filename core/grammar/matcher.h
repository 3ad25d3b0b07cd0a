// matcher.h - the grammar constraint of the sampler: which tokens of the
// model's vocabulary may come next, and the recogniser state advanced by the
// chosen token.
//
// The recogniser is a pushdown automaton over bytes on the compiled Grammar
// (grammar.h). A parse is a stack of frames (position, parent); its top is a
// position waiting for a byte, the frames below are the positions to return
// to when a rule completes. Calls are expanded eagerly (a call in the last
// place of an alternative does not push a frame: tail calls keep right
// recursion flat), so the state after each byte is the set of all parses
// alive, with duplicates merged (frames are hash-consed: one id per
// (position, parent)), and a flag for "the start rule can be complete here".
//
// The mask. For every position p a stack top can be at, the vocabulary is
// split once (lazily, on first use) by a walk of the vocabulary's byte trie
// from the single frame (p, escape), cutting every subtree whose prefix no
// parse accepts:
//   accepted  - some parse consumes the token's bytes without leaving p's
//               rule (or leaves it exactly at the token's last byte): the
//               token is allowed whatever lies below p on the stack;
//   uncertain - a parse leaves p's rule before the token's end and the next
//               byte may follow that rule (its FOLLOW set): it depends on
//               the stack below, so it is checked at run time;
//   rejected  - everything else (never stored).
// A step's mask is the union of the accepted sets of the state's stack tops
// plus the uncertain tokens each stack accepts (a walk of the token's bytes
// from that stack). End tokens are allowed exactly when the start rule can be
// complete; tokens whose text is empty (control tokens, padding) never.
//
// Limits (hostile grammars): at most kMaxStacks parses alive at once (more
// is Error(invalid_argument) "too ambiguous"); a parse nesting deeper than
// kMaxDepth frames is dropped.
//
// The token splits belong to a CompiledGrammar (a grammar over a
// vocabulary), shared by every matcher made from it: a grammar used again
// (the same schema for many requests) pays for each split once. One matcher
// per sequence, used by one thread at a time; a CompiledGrammar may be shared
// by any number of threads.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "grammar/grammar.h"

namespace paca {

class Tokenizer;

// The vocabulary as the grammar sees it: each token's bytes and a trie of them.
class GrammarVocab {
 public:
  // pieces[id]: the bytes token id adds to the text (empty: never allowed).
  // end_ids: the tokens that end the text (allowed when the grammar is
  // complete); ids outside [0, pieces.size()) are ignored.
  GrammarVocab(const std::vector<std::string>& pieces, std::vector<int32_t> end_ids);
  // From a model's tokenizer: the decoded bytes of every id below n_vocab
  // (SentencePiece U+2581 as a space, <0xNN> as its byte; control tokens and
  // padding ids empty).
  static std::shared_ptr<const GrammarVocab> from_tokenizer(const Tokenizer& tok, int32_t n_vocab,
                                                            std::span<const int32_t> end_ids);

  int32_t n_vocab() const { return n_vocab_; }
  std::string_view piece(int32_t id) const {
    return std::string_view(bytes_).substr(offsets_[static_cast<size_t>(id)],
                                           offsets_[static_cast<size_t>(id) + 1] - offsets_[static_cast<size_t>(id)]);
  }
  const std::vector<int32_t>& end_ids() const { return end_ids_; }

  // The trie of the non-empty pieces in preorder: node 0 is the empty
  // prefix; the children of node i are i + 1, then each next one at the end
  // of its predecessor's subtree, up to nodes[i].end.
  struct Node {
    uint8_t byte;        // the byte from the parent
    uint32_t end;        // one past the last node of the subtree
    uint32_t tok_begin;  // order[tok_begin, tok_own): the tokens whose bytes end here
    uint32_t tok_own;
    uint32_t tok_end;    // order[tok_begin, tok_end): the tokens of the whole subtree
  };
  const std::vector<Node>& nodes() const { return nodes_; }
  const std::vector<int32_t>& order() const { return order_; }
  size_t max_piece() const { return max_piece_; }

 private:
  int32_t n_vocab_ = 0;
  std::string bytes_;
  std::vector<uint32_t> offsets_;  // [n_vocab + 1]
  std::vector<int32_t> end_ids_;
  std::vector<Node> nodes_;
  std::vector<int32_t> order_;
  size_t max_piece_ = 0;
};

// A grammar over a vocabulary and the per-position token splits, filled
// lazily by the matchers that use it (thread-safe).
class CompiledGrammar {
 public:
  CompiledGrammar(std::shared_ptr<const Grammar> grammar, std::shared_ptr<const GrammarVocab> vocab);
  ~CompiledGrammar();
  CompiledGrammar(const CompiledGrammar&) = delete;
  CompiledGrammar& operator=(const CompiledGrammar&) = delete;
  const Grammar& grammar() const { return *grammar_; }
  const GrammarVocab& vocab() const { return *vocab_; }
  // Positions whose token split is computed (for tests and benchmarks).
  size_t n_cached() const;

 private:
  friend class GrammarMatcher;
  struct Splits;
  std::shared_ptr<const Grammar> grammar_;
  std::shared_ptr<const GrammarVocab> vocab_;
  std::unique_ptr<Splits> splits_;
};

class GrammarMatcher {
 public:
  static constexpr size_t kMaxStacks = 4096;
  static constexpr uint32_t kMaxDepth = 2048;

  explicit GrammarMatcher(std::shared_ptr<CompiledGrammar> compiled);
  // With a CompiledGrammar of its own (no sharing of the token splits).
  GrammarMatcher(std::shared_ptr<const Grammar> grammar, std::shared_ptr<const GrammarVocab> vocab);
  ~GrammarMatcher();
  GrammarMatcher(const GrammarMatcher&) = delete;
  GrammarMatcher& operator=(const GrammarMatcher&) = delete;

  const GrammarVocab& vocab() const { return compiled_->vocab(); }
  const Grammar& grammar() const { return compiled_->grammar(); }

  // The allowed next tokens as a bit mask (bit id % 64 of word id / 64;
  // (n_vocab + 63) / 64 words). Returns how many are allowed (0 after an end
  // token was accepted, or when no token of the vocabulary continues the
  // text: the caller reports that).
  size_t fill_mask(std::vector<uint64_t>& mask);
  // Whether token may come next (the reference: its bytes walked from the
  // state, every step computed afresh, without the matcher's memo of steps).
  bool allows(int32_t token);
  // Advances the state by token. Throws Error(invalid_argument) when the
  // grammar does not allow it (the state is then unchanged).
  void accept(int32_t token);
  // Advances by raw bytes; false (state unchanged) when they are rejected.
  bool accept_bytes(std::string_view bytes);
  // The start rule can be complete after the bytes so far.
  bool can_end() const;
  // An end token was accepted: nothing may follow.
  bool ended() const { return ended_; }
  // Bytes accepted so far.
  size_t n_bytes() const { return n_bytes_; }

 private:
  struct Impl;
  std::shared_ptr<CompiledGrammar> compiled_;
  std::unique_ptr<Impl> impl_;
  bool ended_ = false;
  size_t n_bytes_ = 0;
};

}  // namespace paca

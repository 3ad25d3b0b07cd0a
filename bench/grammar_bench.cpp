// grammar-bench: the cost of the grammar constraint per generated token, at
// the Llama 2 (SentencePiece, 32,000) and Llama 3 (byte-level BPE, 128,256)
// vocabularies of ../shared/tokenizers, for a JSON Schema (a tool call with
// nested objects, arrays, enums, formats) and a large GBNF grammar (a small
// programming language: ~40 rules).
//
//   grammar-bench [--shared DIR] [--reps N]
//
// The path: a valid document of each grammar, spelt greedily by the longest
// token the mask allows at each step (what a model that writes the document
// would choose, token count close to the tokenizer's). Reported per token:
//   mask  GrammarMatcher::fill_mask, the bit mask of the allowed tokens;
//   apply the sampler's stage 0: the logits copied with -inf for the
//         tokens the mask forbids (copy_with_grammar_mask, one pass);
//   accept the state advanced by the chosen token;
// "cold" is the first document through a new compiled grammar (the
// per-position token splits are built as positions are first met), "warm"
// the median of --reps (default 5) later documents through new matchers of
// the same compiled grammar (what every request after the first pays).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "grammar/json_schema.h"
#include "grammar/matcher.h"
#include "sample/sampler.h"
#include "tokenizer/tokenizer_files.h"
#include "util/error.h"

namespace {

using Clock = std::chrono::steady_clock;

const char* kSchema = R"({
  "type": "object",
  "properties": {
    "name": {"enum": ["get_weather", "search_flights", "book_hotel"]},
    "arguments": {
      "type": "object",
      "properties": {
        "city": {"type": "string", "maxLength": 40},
        "date": {"type": "string", "format": "date"},
        "travellers": {"type": "array", "maxItems": 6, "items": {
          "type": "object",
          "properties": {"first": {"type": "string"}, "last": {"type": "string"},
                         "age": {"type": "integer"}, "frequent_flyer": {"type": ["string", "null"]}},
          "required": ["first", "last"]}},
        "budget": {"type": "number"},
        "refundable": {"type": "boolean"},
        "notes": {"type": "string"}},
      "required": ["city", "date"]},
    "id": {"type": "string", "format": "uuid"}},
  "required": ["name", "arguments"]})";

const char* kSchemaDoc = R"({"name": "search_flights", "arguments": {"city": "San Francisco", "date": "2025-03-14",
 "travellers": [{"first": "Ada", "last": "Lovelace", "age": 36, "frequent_flyer": "UA-12345"},
  {"first": "Charles", "last": "Babbage", "age": 44, "frequent_flyer": null}], "budget": 1250.5,
 "refundable": true, "notes": "Window seats if possible; one checked bag each. Vegetarian meals, please."},
 "id": "0f8fad5b-d9cb-469f-a165-70867728950e"})";

const char* kGbnf = R"gbnf(
root       ::= ws (item ws)*
item       ::= function | statement
function   ::= "fn" ws1 ident ws "(" ws params? ws ")" ws ("->" ws type ws)? block
params     ::= param (ws "," ws param)*
param      ::= ident ws ":" ws type
type       ::= "int" | "float" | "bool" | "str" | "[" ws type ws "]" | ident
block      ::= "{" ws (statement ws)* "}"
statement  ::= let | assign | if | while | for | return | exprstmt | block | comment
let        ::= "let" ws1 ident ws (":" ws type ws)? "=" ws expr ws ";"
assign     ::= lvalue ws assignop ws expr ws ";"
assignop   ::= "=" | "+=" | "-=" | "*=" | "/="
lvalue     ::= ident (ws "[" ws expr ws "]" | "." ident)*
if         ::= "if" ws1 expr ws block (ws "else" ws (if | block))?
while      ::= "while" ws1 expr ws block
for        ::= "for" ws1 ident ws1 "in" ws1 expr ws block
return     ::= "return" (ws1 expr)? ws ";"
exprstmt   ::= expr ws ";"
comment    ::= "//" [^\n]* "\n"
expr       ::= orexpr
orexpr     ::= andexpr (ws "||" ws andexpr)*
andexpr    ::= cmpexpr (ws "&&" ws cmpexpr)*
cmpexpr    ::= addexpr (ws cmpop ws addexpr)?
cmpop      ::= "==" | "!=" | "<=" | ">=" | "<" | ">"
addexpr    ::= mulexpr (ws [-+] ws mulexpr)*
mulexpr    ::= unary (ws [*/%] ws unary)*
unary      ::= ("!" | "-") ws unary | postfix
postfix    ::= primary (ws "(" ws args? ws ")" | ws "[" ws expr ws "]" | "." ident)*
args       ::= expr (ws "," ws expr)*
primary    ::= number | string | "true" | "false" | "nil" | ident | "(" ws expr ws ")" | list | map
list       ::= "[" ws (expr (ws "," ws expr)*)? ws "]"
map        ::= "{" ws (string ws ":" ws expr (ws "," ws string ws ":" ws expr)*)? ws "}"
number     ::= [0-9]+ ("." [0-9]+)? ([eE] [-+]? [0-9]+)?
string     ::= "\"" (strchar | escape)* "\""
strchar    ::= [^"\\\x00-\x1F]
escape     ::= "\\" (["\\/nrt] | "u" [0-9a-fA-F]{4})
ident      ::= [a-zA-Z_] [a-zA-Z0-9_]*
ws         ::= [ \t\n]*
ws1        ::= [ \t\n]+
)gbnf";

const char* kGbnfDoc = R"(// compute some statistics
fn mean(xs: [float]) -> float {
    let total: float = 0.0;
    for x in xs {
        total += x;
    }
    if len(xs) == 0 {
        return 0.0;
    }
    return total / len(xs);
}

fn main() {
    let data = [1.5, 2.25, 3.0, 4.75, 10.0];
    let names = {"alpha": 1, "beta": 2, "gamma": 3};
    let m = mean(data);
    while m > 2.0 && names["alpha"] != 0 {
        m -= 0.5;
        print("mean is now \"" + str(m) + "\"\n");
    }
}
)";

// The longest allowed token that spells a prefix of `rest` (-1: none).
int32_t longest_allowed(const paca::GrammarVocab& v, const std::vector<uint64_t>& mask, std::string_view rest) {
  const auto& nodes = v.nodes();
  int32_t best = -1;
  uint32_t node = 0;
  for (size_t depth = 0; depth < rest.size(); ++depth) {
    uint32_t next = 0;
    for (uint32_t c = node + 1; c < nodes[node].end; c = nodes[c].end)
      if (nodes[c].byte == static_cast<uint8_t>(rest[depth])) {
        next = c;
        break;
      }
    if (next == 0) break;
    node = next;
    for (uint32_t r = nodes[node].tok_begin; r < nodes[node].tok_own; ++r) {
      const int32_t id = v.order()[r];
      if ((mask[static_cast<size_t>(id) >> 6] >> (id & 63)) & 1) best = id;
    }
  }
  return best;
}

struct Times {
  double mask_us = 0, apply_us = 0, accept_us = 0;
  size_t tokens = 0;
};

double us_since(Clock::time_point t0) { return std::chrono::duration<double, std::micro>(Clock::now() - t0).count(); }

// One document through a new matcher of `cg`.
Times run_document(const std::shared_ptr<paca::CompiledGrammar>& cg, std::string_view doc) {
  paca::GrammarMatcher m(cg);
  const paca::GrammarVocab& v = m.vocab();
  std::vector<uint64_t> mask;
  std::vector<float> logits(static_cast<size_t>(v.n_vocab()), 0.5f), adjusted(logits.size());
  Times t;
  size_t at = 0;
  while (at < doc.size()) {
    auto t0 = Clock::now();
    m.fill_mask(mask);
    t.mask_us += us_since(t0);
    t0 = Clock::now();
    paca::copy_with_grammar_mask(logits, mask, adjusted);
    t.apply_us += us_since(t0);
    const int32_t tok = longest_allowed(v, mask, doc.substr(at));
    if (tok < 0) paca::fail(paca::Status::internal, "grammar-bench: no allowed token spells the document at byte {}", at);
    t0 = Clock::now();
    m.accept(tok);
    t.accept_us += us_since(t0);
    at += v.piece(tok).size();
    ++t.tokens;
  }
  return t;
}

void report(const char* vocab, const char* grammar, const Times& t, const char* when) {
  const auto n = static_cast<double>(t.tokens);
  std::printf("%-8s %-6s %-5s %5zu tokens  mask %8.2f us/token  apply %6.2f us/token  accept %6.2f us/token\n", vocab,
              grammar, when, t.tokens, t.mask_us / n, t.apply_us / n, t.accept_us / n);
}

}  // namespace

int main(int argc, char** argv) {
  std::string shared = "../shared";
  if (const char* e = std::getenv("PACA_SHARED_DIR")) shared = e;
  int reps = 5;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--shared") == 0 && i + 1 < argc) shared = argv[++i];
    else if (std::strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps = std::max(1, std::atoi(argv[++i]));
    else {
      std::fprintf(stderr, "usage: grammar-bench [--shared DIR] [--reps N]\n");
      return 2;
    }
  }
  try {
    const auto schema = std::make_shared<const paca::Grammar>(paca::compile_json_schema(kSchema));
    const auto gbnf = std::make_shared<const paca::Grammar>(paca::parse_gbnf(kGbnf));
    struct V {
      const char* name;
      const char* file;
    };
    for (const V& vv : {V{"llama2", "/tokenizers/llama2/tokenizer.model"}, V{"llama3", "/tokenizers/llama3/tokenizer.json"}}) {
      const auto tok = paca::load_tokenizer_file(shared + vv.file);
      auto t0 = Clock::now();
      const auto vocab = paca::GrammarVocab::from_tokenizer(*tok, tok->n_tokens(), tok->eog_ids());
      std::printf("%-8s vocabulary %d tokens, trie of %zu nodes built in %.1f ms\n", vv.name, vocab->n_vocab(),
                  vocab->nodes().size(), us_since(t0) / 1000);
      struct G {
        const char* name;
        std::shared_ptr<const paca::Grammar> g;
        const char* doc;
      };
      for (const G& gg : {G{"schema", schema, kSchemaDoc}, G{"gbnf", gbnf, kGbnfDoc}}) {
        auto cg = std::make_shared<paca::CompiledGrammar>(gg.g, vocab);
        report(vv.name, gg.name, run_document(cg, gg.doc), "cold");
        std::vector<Times> warm;
        for (int r = 0; r < reps; ++r) warm.push_back(run_document(cg, gg.doc));
        std::sort(warm.begin(), warm.end(), [](const Times& a, const Times& b) { return a.mask_us < b.mask_us; });
        report(vv.name, gg.name, warm[warm.size() / 2], "warm");
        std::printf("%-8s %-6s       %zu positions with a token split (of %zu grammar elements)\n", vv.name, gg.name,
                    cg->n_cached(), gg.g->elems.size());
      }
    }
  } catch (const paca::Error& e) {
    std::fprintf(stderr, "grammar-bench: %s\n", e.what());
    return 1;
  }
  return 0;
}

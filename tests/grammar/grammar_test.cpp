// grammar_test.cpp - the GBNF parser (errors and their positions) and the
// recogniser (which texts a grammar accepts), on a vocabulary of the 256
// single bytes so that a text is walked byte by byte.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "grammar/grammar.h"
#include "grammar/matcher.h"
#include "grammar_test_util.h"
#include "util/error.h"

namespace {

using paca::Grammar;
using paca::GrammarMatcher;

using grammartest::byte_vocab;

std::unique_ptr<GrammarMatcher> matcher(const std::string& gbnf) {
  return std::make_unique<GrammarMatcher>(std::make_shared<const Grammar>(paca::parse_gbnf(gbnf)), byte_vocab());
}

// The whole text is a sentence of the grammar.
bool matches(const std::string& gbnf, std::string_view text) {
  auto m = matcher(gbnf);
  return m->accept_bytes(text) && m->can_end();
}

// The text is a prefix of some sentence.
bool prefix(const std::string& gbnf, std::string_view text) { return matcher(gbnf)->accept_bytes(text); }

std::string parse_error(const std::string& gbnf) {
  return grammartest::error_of([&] { (void)paca::parse_gbnf(gbnf); });
}

TEST(Gbnf, ErrorsNameLineAndColumn) {
  EXPECT_EQ(parse_error("root ::= \"a\"\nfoo = \"b\"\n"),
            "grammar: line 2, column 5 (byte 17): unexpected character '='");
  EXPECT_EQ(parse_error("root ::= \"abc\n"), "grammar: line 1, column 10 (byte 9): unterminated string literal");
  EXPECT_EQ(parse_error("root ::= x\n"), "grammar: line 1, column 10 (byte 9): rule 'x' is referenced but not defined");
  EXPECT_EQ(parse_error("root ::= [a-z\n"), "grammar: line 1, column 10 (byte 9): unterminated character class");
  EXPECT_EQ(parse_error("root ::= [z-a]"),
            "grammar: line 1, column 13 (byte 12): character range U+7A-U+61 is reversed");
  EXPECT_EQ(parse_error("root ::= \"\\q\""), "grammar: line 1, column 11 (byte 10): unknown escape '\\q'");
  EXPECT_EQ(parse_error("root ::= \"a\"{3,1}"), "grammar: line 1, column 13 (byte 12): repetition {3,1}: min > max");
  EXPECT_EQ(parse_error("root ::= (\"a\""), "grammar: line 1, column 10 (byte 9): unclosed '('");
  EXPECT_EQ(parse_error("root ::= \"a\" )"), "grammar: line 1, column 14 (byte 13): unexpected character ')'");
  EXPECT_EQ(parse_error("root ::= \"a\"\nroot ::= \"b\""), "grammar: line 2, column 1 (byte 13): rule 'root' is defined twice");
  EXPECT_EQ(parse_error("# only a comment\n"), "grammar: no rule named 'root' (the start rule)");
  EXPECT_EQ(parse_error("root ::= \"\\u00e\""), "grammar: line 1, column 16 (byte 15): expected 4 hex digits after \\u");
  EXPECT_EQ(parse_error("root ::= \"\\uD800\""),
            "grammar: line 1, column 11 (byte 10): \\u escape U+D800 is not a Unicode scalar value");
  EXPECT_EQ(parse_error("root ::= \"\xff\""), "grammar: line 1, column 11 (byte 10): invalid UTF-8 in the grammar");
  EXPECT_EQ(parse_error("root ::= \"a\"{100001}"), "grammar: line 1, column 14 (byte 13): repetition count above 100000");
  // columns count characters, not bytes
  EXPECT_EQ(parse_error("root ::= \"é\" @"), "grammar: line 1, column 14 (byte 14): unexpected character '@'");
}

TEST(Gbnf, LeftRecursionIsRefused) {
  EXPECT_EQ(parse_error("root ::= root \"a\" | \"a\""),
            "grammar: rule 'root' can reach itself without consuming input (left recursion, or a repetition of "
            "something that can be empty)");
  EXPECT_NE(parse_error("root ::= a\na ::= b? root\nb ::= \"x\"").find("left recursion"), std::string::npos);
  EXPECT_NE(parse_error("root ::= (\"a\"?)*").find("left recursion"), std::string::npos);
}

TEST(Gbnf, DeepNestingIsAnErrorNotACrash) {
  const std::string deep = "root ::= " + std::string(300, '(') + "\"a\"" + std::string(300, ')');
  EXPECT_NE(parse_error(deep).find("nested deeper than 256"), std::string::npos);
  // a long chain of rules is fine (the recogniser does not recurse)
  std::string chain = "root ::= r0\n";
  for (int i = 0; i < 20000; ++i) chain += "r" + std::to_string(i) + " ::= r" + std::to_string(i + 1) + "\n";
  chain += "r20000 ::= \"z\"\n";
  EXPECT_TRUE(matches(chain, "z"));
  EXPECT_FALSE(matches(chain, "y"));
}

TEST(Recogniser, LiteralsAlternativesGroups) {
  const std::string g = "root ::= \"ab\" | \"a\" (\"c\" | \"d\") \"e\"";
  EXPECT_TRUE(matches(g, "ab"));
  EXPECT_TRUE(matches(g, "ace"));
  EXPECT_TRUE(matches(g, "ade"));
  EXPECT_FALSE(matches(g, "a"));
  EXPECT_TRUE(prefix(g, "a"));
  EXPECT_FALSE(prefix(g, "ae"));
  EXPECT_FALSE(matches(g, "abe"));
  EXPECT_FALSE(matches(g, ""));
}

TEST(Recogniser, Repetitions) {
  EXPECT_TRUE(matches("root ::= \"a\"*", ""));
  EXPECT_TRUE(matches("root ::= \"a\"*", "aaaa"));
  EXPECT_FALSE(matches("root ::= \"a\"+", ""));
  EXPECT_TRUE(matches("root ::= \"a\"+ \"b\"", "aaab"));
  EXPECT_TRUE(matches("root ::= \"a\"? \"b\"", "b"));
  EXPECT_FALSE(matches("root ::= \"a\"? \"b\"", "aab"));
  const std::string g = "root ::= [0-9]{2,4}";
  EXPECT_FALSE(matches(g, "1"));
  EXPECT_TRUE(matches(g, "12"));
  EXPECT_TRUE(matches(g, "1234"));
  EXPECT_FALSE(prefix(g, "12345"));
  EXPECT_TRUE(matches("root ::= \"ab\"{3}", "ababab"));
  EXPECT_FALSE(matches("root ::= \"ab\"{3}", "abab"));
  EXPECT_TRUE(matches("root ::= \"x\"{2,}", "xxxxxxx"));
  EXPECT_FALSE(matches("root ::= \"x\"{2,}", "x"));
  EXPECT_TRUE(matches("root ::= \"x\"{0,0} \"y\"", "y"));
}

TEST(Recogniser, CharacterClassesAreUtf8) {
  const std::string g = "root ::= [a-cé]+";
  EXPECT_TRUE(matches(g, "abcé"));
  EXPECT_FALSE(matches(g, "d"));
  EXPECT_FALSE(prefix(g, "\xc3\xa8"));  // è shares é's first byte
  EXPECT_TRUE(prefix(g, "\xc3"));
  const std::string neg = "root ::= [^\"\\\\]*";  // any character but a quote and a backslash
  EXPECT_TRUE(matches(neg, "plain text, 日本語, 🙂"));
  EXPECT_FALSE(prefix(neg, "a\"b"));
  EXPECT_FALSE(prefix(neg, "\xff"));          // never a valid UTF-8 byte
  EXPECT_FALSE(prefix(neg, "\xed\xa0\x80"));  // a surrogate
  EXPECT_FALSE(prefix(neg, "\xc0\x80"));      // an overlong encoding
  EXPECT_TRUE(matches("root ::= .", "\xf4\x8f\xbf\xbf"));  // U+10FFFF
  EXPECT_FALSE(prefix("root ::= .", "\xf4\x90"));         // above U+10FFFF
  EXPECT_TRUE(matches("root ::= [\\u0100-\\U0001F600]", "\xf0\x9f\x98\x80"));
  EXPECT_FALSE(matches("root ::= [\\u0100-\\U0001F600]", "\xf0\x9f\x98\x81"));
  EXPECT_TRUE(matches("root ::= \"\\x41\\n\\t\\\"\"", "A\n\t\""));
}

TEST(Recogniser, RecursionAndNesting) {
  const std::string g = "root ::= p\np ::= \"(\" p* \")\"";
  EXPECT_TRUE(matches(g, "()"));
  EXPECT_TRUE(matches(g, "(()(()))"));
  EXPECT_FALSE(matches(g, "(()"));
  EXPECT_TRUE(prefix(g, "(()"));
  EXPECT_FALSE(prefix(g, "())"));
  std::string deep(1000, '(');
  deep += std::string(1000, ')');
  EXPECT_TRUE(matches(g, deep));
}

TEST(Recogniser, LayoutCommentsAndMultilineRules) {
  const std::string g =
      "# a comment line\n"
      "root ::= greeting \" \" name  # trailing comment\n"
      "greeting ::= \"hello\"\n"
      "         | \"hi\"\n"
      "name ::= (\n"
      "    \"bob\" |\n"
      "    \"alice\"\n"
      ")\n";
  EXPECT_TRUE(matches(g, "hello bob"));
  EXPECT_TRUE(matches(g, "hi alice"));
  EXPECT_FALSE(matches(g, "hey bob"));
  // a sequence may go on on the next line when that line does not start a rule
  EXPECT_TRUE(matches("root ::= \"a\"\n  \"b\"\n", "ab"));
}

TEST(Recogniser, AmbiguityIsMerged) {
  // (a|aa)* has exponentially many parses of a^n; the state stays small
  const std::string g = "root ::= (\"a\" | \"aa\")* \"b\"";
  EXPECT_TRUE(matches(g, std::string(200, 'a') + "b"));
}

TEST(Recogniser, EndTokenOnlyWhenComplete) {
  auto m = matcher("root ::= \"ab\"");
  std::vector<uint64_t> mask;
  EXPECT_EQ(m->fill_mask(mask), 1u);
  EXPECT_TRUE((mask['a' / 64] >> ('a' % 64)) & 1);
  EXPECT_THROW(m->accept(256), paca::Error);
  m->accept('a');
  EXPECT_THROW(m->accept('a'), paca::Error);
  m->accept('b');
  EXPECT_EQ(m->fill_mask(mask), 1u);
  EXPECT_TRUE((mask[256 / 64] >> (256 % 64)) & 1);
  m->accept(256);
  EXPECT_TRUE(m->ended());
  EXPECT_EQ(m->fill_mask(mask), 0u);
}

}  // namespace

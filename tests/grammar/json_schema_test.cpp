// json_schema_test.cpp - JSON Schema -> grammar: which JSON texts a schema's
// grammar accepts (texts written by hand from the schema's meaning), and the
// errors for invalid or unsupported schemas.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "grammar/json_schema.h"
#include "grammar/matcher.h"
#include "grammar_test_util.h"
#include "util/error.h"

namespace {

using paca::GrammarMatcher;

using grammartest::byte_vocab;

bool accepts(const std::string& schema, std::string_view text) {
  GrammarMatcher m(std::make_shared<const paca::Grammar>(paca::compile_json_schema(schema)), byte_vocab());
  return m.accept_bytes(text) && m.can_end();
}

std::string schema_error(const std::string& schema) {
  return grammartest::error_of([&] { (void)paca::compile_json_schema(schema); });
}

TEST(JsonSchema, Primitives) {
  EXPECT_TRUE(accepts(R"({"type":"integer"})", "-120"));
  EXPECT_TRUE(accepts(R"({"type":"integer"})", "0"));
  EXPECT_FALSE(accepts(R"({"type":"integer"})", "01"));
  EXPECT_FALSE(accepts(R"({"type":"integer"})", "1.5"));
  EXPECT_TRUE(accepts(R"({"type":"number"})", "1.5e-3"));
  EXPECT_TRUE(accepts(R"({"type":"number"})", "-0.25"));
  EXPECT_FALSE(accepts(R"({"type":"number"})", "1."));
  EXPECT_TRUE(accepts(R"({"type":"boolean"})", "false"));
  EXPECT_FALSE(accepts(R"({"type":"boolean"})", "null"));
  EXPECT_TRUE(accepts(R"({"type":"null"})", "null"));
  EXPECT_TRUE(accepts(R"({"type":"string"})", R"("a \"quoted\" \\ \u00e9 é")"));
  EXPECT_FALSE(accepts(R"({"type":"string"})", "\"tab\there\""));  // raw control characters need escapes
  EXPECT_FALSE(accepts(R"({"type":"string"})", R"("\x")"));
  EXPECT_TRUE(accepts(R"({"type":["string","null"]})", "null"));
  EXPECT_TRUE(accepts(R"({})", R"({"any": [1, "two", {"three": null}]})"));
  EXPECT_TRUE(accepts(R"(true)", "[]"));
}

TEST(JsonSchema, StringsLengthsFormatsPatterns) {
  const std::string len = R"({"type":"string","minLength":2,"maxLength":3})";
  EXPECT_FALSE(accepts(len, R"("a")"));
  EXPECT_TRUE(accepts(len, R"("ab")"));
  EXPECT_TRUE(accepts(len, R"("a\nb")"));  // an escape is one character
  EXPECT_TRUE(accepts(len, R"("日本語")"));
  EXPECT_FALSE(accepts(len, R"("abcd")"));
  EXPECT_TRUE(accepts(R"({"type":"string","format":"date"})", R"("2024-02-29")"));
  EXPECT_FALSE(accepts(R"({"type":"string","format":"date"})", R"("2024-13-01")"));
  EXPECT_TRUE(accepts(R"({"type":"string","format":"time"})", R"("23:59:07Z")"));
  EXPECT_TRUE(accepts(R"({"type":"string","format":"date-time"})", R"("2024-02-29T08:00:00.5+01:00")"));
  EXPECT_FALSE(accepts(R"({"type":"string","format":"date-time"})", R"("2024-02-29 08:00:00Z")"));
  EXPECT_TRUE(accepts(R"({"type":"string","format":"uuid"})", R"("123e4567-e89b-12d3-a456-426614174000")"));
  EXPECT_FALSE(accepts(R"({"type":"string","format":"uuid"})", R"("123e4567-e89b-12d3-a456-42661417400")"));
  EXPECT_TRUE(accepts(R"({"type":"string","format":"email"})", R"("jane.doe@example.com")"));
  EXPECT_FALSE(accepts(R"({"type":"string","format":"email"})", R"("jane.doe")"));
  const std::string phone = R"({"type":"string","pattern":"^\\+?[0-9]{2,3}(-[0-9]{3}){2}$"})";
  EXPECT_TRUE(accepts(phone, R"("+33-123-456")"));
  EXPECT_TRUE(accepts(phone, R"("44-123-456")"));
  EXPECT_FALSE(accepts(phone, R"("44-123")"));
  EXPECT_TRUE(accepts(R"({"pattern":"^(cat|dog)s?$"})", R"("dogs")"));
  EXPECT_FALSE(accepts(R"({"pattern":"^(cat|dog)s?$"})", R"("cow")"));
  EXPECT_TRUE(accepts(R"({"pattern":"ab"})", R"("xxabyy")"));  // unanchored: anywhere in the string
  EXPECT_TRUE(accepts(R"({"pattern":"^a\"b$"})", R"("a\"b")"));   // a quote in the pattern is escaped in JSON
  EXPECT_TRUE(accepts(R"({"pattern":"^\\d+\\.\\w$"})", R"("42.x")"));
}

TEST(JsonSchema, ObjectsRequiredOptionalAndOrder) {
  const std::string s = R"({"type":"object","properties":{
      "name":{"type":"string"},"age":{"type":"integer"},"tags":{"type":"array","items":{"type":"string"}}},
      "required":["name"]})";
  EXPECT_TRUE(accepts(s, R"({"name":"Ann"})"));
  EXPECT_TRUE(accepts(s, R"({ "name": "Ann", "age": 31, "tags": ["a", "b"] })"));
  EXPECT_TRUE(accepts(s, "{\n  \"name\": \"Ann\",\n  \"tags\": []\n}"));
  EXPECT_FALSE(accepts(s, R"({"age":31})"));                     // name is required
  EXPECT_FALSE(accepts(s, R"({"age":31,"name":"Ann"})"));        // properties in the schema's order
  EXPECT_FALSE(accepts(s, R"({"name":"Ann","extra":1})"));       // no additional properties
  EXPECT_FALSE(accepts(s, R"({"name":"Ann",})"));
  EXPECT_FALSE(accepts(s, R"({"name":"Ann","age":"31"})"));
  const std::string all_optional = R"({"properties":{"a":{"const":1},"b":{"const":2}}})";
  EXPECT_TRUE(accepts(all_optional, "{}"));
  EXPECT_TRUE(accepts(all_optional, R"({"b":2})"));
  EXPECT_TRUE(accepts(all_optional, R"({"a":1,"b":2})"));
  EXPECT_FALSE(accepts(all_optional, R"({,"b":2})"));
  EXPECT_TRUE(accepts(R"({"type":"object","additionalProperties":{"type":"integer"}})", R"({"x":1,"y":2})"));
  EXPECT_FALSE(accepts(R"({"type":"object","additionalProperties":{"type":"integer"}})", R"({"x":"1"})"));
  EXPECT_TRUE(accepts(R"({"type":"object","additionalProperties":false})", "{}"));
  EXPECT_FALSE(accepts(R"({"type":"object","additionalProperties":false})", R"({"x":1})"));
  EXPECT_TRUE(accepts(R"({"required":["id"]})", R"({"id":[true]})"));
}

TEST(JsonSchema, ArraysEnumsConstAnyOfRefs) {
  const std::string a = R"({"type":"array","items":{"type":"integer"},"minItems":1,"maxItems":3})";
  EXPECT_FALSE(accepts(a, "[]"));
  EXPECT_TRUE(accepts(a, "[1]"));
  EXPECT_TRUE(accepts(a, "[1, 2, 3]"));
  EXPECT_FALSE(accepts(a, "[1,2,3,4]"));
  EXPECT_TRUE(accepts(R"({"type":"array","maxItems":0})", "[ ]"));
  const std::string e = R"({"enum":["red","green",3,null,{"k":[1]}]})";
  EXPECT_TRUE(accepts(e, R"("green")"));
  EXPECT_TRUE(accepts(e, "3"));
  EXPECT_TRUE(accepts(e, "null"));
  EXPECT_TRUE(accepts(e, R"({"k":[1]})"));
  EXPECT_FALSE(accepts(e, R"("blue")"));
  EXPECT_TRUE(accepts(R"({"const":"x\"y"})", R"("x\"y")"));
  const std::string any = R"({"anyOf":[{"type":"integer"},{"type":"string","maxLength":1}]})";
  EXPECT_TRUE(accepts(any, "7"));
  EXPECT_TRUE(accepts(any, R"("z")"));
  EXPECT_FALSE(accepts(any, R"("zz")"));
  const std::string tree = R"({"$defs":{"node":{"type":"object","properties":{
      "v":{"type":"integer"},"kids":{"type":"array","items":{"$ref":"#/$defs/node"}}},"required":["v"]}},
      "$ref":"#/$defs/node"})";
  EXPECT_TRUE(accepts(tree, R"({"v":1,"kids":[{"v":2},{"v":3,"kids":[{"v":4}]}]})"));
  EXPECT_FALSE(accepts(tree, R"({"v":1,"kids":[{"kids":[]}]})"));
  EXPECT_TRUE(accepts(R"({"definitions":{"d":{"type":"boolean"}},"properties":{"x":{"$ref":"#/definitions/d"}},
      "required":["x"]})", R"({"x":true})"));
  const std::string rec = R"({"type":"array","items":{"$ref":"#"},"maxItems":2})";
  EXPECT_TRUE(accepts(rec, "[[],[[]]]"));
  EXPECT_TRUE(accepts(R"({"oneOf":[{"type":"null"},{"allOf":[{"type":"boolean"}]}]})", "true"));
}

TEST(JsonSchema, ErrorsSayWhere) {
  EXPECT_EQ(schema_error("{\"type\": }").rfind("json_schema: not valid JSON: [json.exception.parse_error.101] parse error at line 1, column 10", 0), 0u)
      << schema_error("{\"type\": }");
  // a number too large for a double is nlohmann's out_of_range, not a parse error (found by fuzz_json_schema)
  EXPECT_EQ(schema_error("11111111e111111111"),
            "json_schema: not valid JSON: [json.exception.out_of_range.406] number overflow parsing '11111111e111111111'");
  EXPECT_EQ(schema_error(R"({"properties":{"a":{"type":"integer","minimum":0}}})"),
            "json_schema: at /properties/a: keyword 'minimum' is not supported");
  EXPECT_EQ(schema_error(R"({"type":"strin"})"), "json_schema: at /: unknown type \"strin\"");
  EXPECT_EQ(schema_error(R"({"$ref":"#/$defs/missing"})"),
            "json_schema: at /: '$ref' \"#/$defs/missing\" does not point into the document");
  EXPECT_EQ(schema_error(R"({"$ref":"https://example.com/s.json"})"),
            "json_schema: at /: '$ref' \"https://example.com/s.json\": only references inside the document (#...) are supported");
  EXPECT_EQ(schema_error(R"({"items":{"anyOf":[]}})"), "json_schema: at /items: 'anyOf' must be a non-empty array");
  EXPECT_EQ(schema_error(R"({"type":"array","minItems":3,"maxItems":2})"), "json_schema: at /: maxItems < minItems");
  // counts written as floats: integral ones are counts, huge ones are refused before any integer cast
  // (1e46 was an out-of-range double->int64 cast, found by fuzz_json_schema under UBSan)
  EXPECT_TRUE(accepts(R"({"type":"array","maxItems":2.0})", "[1,2]"));
  EXPECT_FALSE(accepts(R"({"type":"array","maxItems":2.0})", "[1,2,3]"));
  EXPECT_EQ(schema_error(R"({"type":"array","maxItems":1e46})"), "json_schema: at /: 'maxItems' above 10000 is not supported");
  EXPECT_EQ(schema_error(R"({"type":"array","maxItems":1.5})"), "json_schema: at /: 'maxItems' must be a non-negative integer");
  EXPECT_EQ(schema_error(R"({"type":"string","minLength":-1})"), "json_schema: at /: 'minLength' must be a non-negative integer");
  EXPECT_EQ(schema_error("false"), "json_schema: at /: the schema false matches nothing");
  EXPECT_EQ(schema_error("42"), "json_schema: at /: a schema must be an object or a boolean");
  EXPECT_EQ(schema_error(R"({"pattern":"^(a$"})"), "json_schema: at /: pattern, at character 2: unclosed '('");
  EXPECT_EQ(schema_error(R"j({"pattern":"(?=a)"})j"),
            "json_schema: at /: pattern, at character 1: only (?:...) groups are supported (no lookaround or named groups)");
  // self-reference without progress is refused, not looped on
  EXPECT_NE(schema_error(R"({"$ref":"#"})").find("left recursion"), std::string::npos);
  std::string deep;
  for (int i = 0; i < 100; ++i) deep += R"({"items":)";
  deep += "{}" + std::string(100, '}');
  EXPECT_NE(schema_error(deep).find("nested deeper than 64"), std::string::npos);
}

}  // namespace

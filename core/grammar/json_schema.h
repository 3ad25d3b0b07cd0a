// json_schema.h - JSON Schema -> GBNF (then grammar.h's parse_gbnf).
//
// What a schema becomes (the output is always JSON; whitespace between
// tokens is 0..20 of space, tab, newline):
//   type          object, array, string, number, integer, boolean, null, or a
//                 list of them (alternatives); no type: any JSON value
//   object        the declared properties in the schema's order, each
//                 required one present, each optional one present or not;
//                 additionalProperties is taken as false when there are
//                 properties (no other keys); an object without properties
//                 is any object (additionalProperties true or absent), a map
//                 of one schema (additionalProperties: schema) or {} (false).
//                 required names without a property schema take any value.
//   array         items (one schema), minItems, maxItems
//   string        minLength, maxLength (characters), format date, time,
//                 date-time, uuid, email (others: any string), pattern (a
//                 regular expression: literals, ., classes, \d \w \s, groups,
//                 |, * + ? {m,n}; unanchored ends match any text; classes
//                 and . never produce a quote, backslash or control character)
//   number        -?(0|[1-9][0-9]{0,15})(\.[0-9]{1,16})?([eE][-+]?[0-9]{1,3})?
//   integer       -?(0|[1-9][0-9]{0,15})
//   enum, const   the values' compact JSON text
//   anyOf, oneOf  alternatives (oneOf is not made exclusive); allOf of one schema
//   $ref          "#", "#/$defs/...", "#/definitions/..." or any JSON pointer
//                 into the document (recursion allowed)
// Keywords that constrain values in ways not listed (minimum, maximum,
// multipleOf, not, if/then/else, patternProperties, uniqueItems, contains,
// prefixItems, minProperties, ...) are refused with an error naming the
// keyword and where it is, rather than silently producing values the schema
// rejects. Annotations (title, description, default, examples, $schema, $id,
// $comment, ...) are ignored.
#pragma once

#include <string>
#include <string_view>

#include "grammar/grammar.h"

namespace paca {

// The GBNF text of a schema. Throws Error(invalid_argument) "json_schema:
// ..." for text that is not JSON (with the line and column nlohmann-json
// reports), or "json_schema: at /json/pointer: ..." for an unsupported or
// invalid schema.
std::string json_schema_to_gbnf(std::string_view schema);

// parse_gbnf(json_schema_to_gbnf(schema)).
Grammar compile_json_schema(std::string_view schema);

}  // namespace paca

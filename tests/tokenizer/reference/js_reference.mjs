// js_reference.mjs - the live Llama 3 references of live_reference_test.cpp,
// run with node from a folder holding node_modules with @lenml/tokenizers and
// tiktoken (scripts/tokenizer_reference.sh installs them; never committed).
//
//   node js_reference.mjs hf       TOKENIZER_DIR IN.json OUT.json
//     @lenml/tokenizers (transformers.js) on tokenizer.json + tokenizer_config.json,
//     encode(text, {add_special_tokens: false}): special-token text is recognised,
//     as in Hugging Face tokenizers
//   node js_reference.mjs tiktoken TOKENIZER_MODEL IN.json OUT.json
//     tiktoken (the Rust core compiled to wasm) with Llama 3's ranks and split
//     pattern, encode(text, [], []): special-token text stays text, as in
//     Meta's tokenizer.py
// IN.json: base64 strings (raw UTF-8 bytes, decoded with TextDecoder: U+FFFD
// per maximal ill-formed subsequence). OUT.json: the id lists.
import fs from "fs";
import { createRequire } from "module";
import path from "path";

const require = createRequire(path.join(process.cwd(), "package.json"));
const [mode, source, input, output] = process.argv.slice(2);
const decoder = new TextDecoder("utf-8", { ignoreBOM: true });  // keep a leading U+FEFF: it is text here
const texts = JSON.parse(fs.readFileSync(input, "utf8")).map((b) => decoder.decode(Buffer.from(b, "base64")));
const pattern =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
let encode;
if (mode === "hf") {
  const { TokenizerLoader } = require("@lenml/tokenizers");
  const tok = TokenizerLoader.fromPreTrained({
    tokenizerJSON: JSON.parse(fs.readFileSync(path.join(source, "tokenizer.json"), "utf8")),
    tokenizerConfig: JSON.parse(fs.readFileSync(path.join(source, "tokenizer_config.json"), "utf8")),
  });
  encode = (t) => tok.encode(t, { add_special_tokens: false });
} else if (mode === "tiktoken") {
  const { Tiktoken } = require("tiktoken/lite");
  const specials = { "<|begin_of_text|>": 128000, "<|end_of_text|>": 128001, "<|eot_id|>": 128009 };
  const enc = new Tiktoken(fs.readFileSync(source, "utf8"), specials, pattern);
  encode = (t) => Array.from(enc.encode(t, [], []));
} else {
  console.error("usage: node js_reference.mjs hf|tiktoken SOURCE IN.json OUT.json");
  process.exit(2);
}
fs.writeFileSync(output, JSON.stringify(texts.map(encode)));

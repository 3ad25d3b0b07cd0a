// serve_e2e.mjs - `paca serve` end to end, driven by OpenAI's own Node
// client (the npm package `openai`, installed by scripts/serve_client.sh).
//
//   node serve_e2e.mjs --paca PATH --shared DIR --client DIR --suite stories|llama3|llama31
//
// Every generated text is compared with `paca run` on the same prompt and
// sampling (seed included), which runs the model through paca_generator, not
// the engine: a request's tokens must not depend on the engine, on streaming,
// on n or on what runs beside it. Exit 0: all checks passed; 1: a check
// failed (each is printed); 77: skipped (no client package, no test models,
// or a paca built without serve).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { createRequire } from 'node:module';
import path from 'node:path';

const SKIP = 77;
const args = {};
for (let i = 2; i + 1 < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const paca = args.paca;
const suite = args.suite;
const models = path.join(process.env.PACA_SHARED_DIR || args.shared || '', 'models');

function skip(why) {
  console.log(`serve_e2e (${suite}): skipped: ${why}`);
  process.exit(SKIP);
}

if (!existsSync(models)) skip(`no test models at ${models}`);
if (!existsSync(path.join(args.client ?? '', 'node_modules', 'openai')))
  skip(`the npm package openai is not installed in ${args.client} (run scripts/serve_client.sh)`);
{
  const r = spawnSync(paca, ['serve', '--help'], { encoding: 'utf8' });
  if (r.status !== 0 && /built without cpp-httplib/.test(r.stderr ?? '')) skip(`paca has no serve: ${r.stderr.trim()}`);
  if (r.status !== 0) {
    console.log(`FAIL paca serve --help: ${r.status ?? r.signal} ${r.error ?? ''} ${r.stderr ?? ''}`);
    process.exit(1);
  }
}
const require = createRequire(path.join(path.resolve(args.client), 'package.json'));
const openaiModule = require('openai');
const OpenAI = openaiModule.OpenAI ?? openaiModule.default ?? openaiModule;

// ---- checks --------------------------------------------------------------------

let checks = 0;
const failures = [];
function check(cond, what, detail = '') {
  checks++;
  if (!cond) {
    failures.push(what);
    console.log(`FAIL ${what}${detail ? `: ${detail}` : ''}`);
  }
}
const show = (v) => JSON.stringify(v);
function same(a, b, what) {
  check(show(a) === show(b), what, `${show(a)} vs ${show(b)}`);
}
// The error a promise rejects with (null when it resolves).
async function failure(promise) {
  try {
    await promise;
    return null;
  } catch (e) {
    return e;
  }
}
async function refused(promise, status, what, param) {
  const e = await failure(promise);
  check(e instanceof OpenAI.APIError && e.status === status, `${what}: HTTP ${status}`, e ? `${e.status} ${e.message}` : 'accepted');
  if (e && param !== undefined) same(e.param ?? e.error?.param, param, `${what}: param`);
  return e;
}

// ---- the server and the reference -------------------------------------------------

const model = (name) => path.join(models, name);
const stopping = new Set();

async function startServer(modelPath, extra = []) {
  const proc = spawn(paca, ['serve', '-m', modelPath, '--port', '0', '--threads', '1', ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  proc.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => {
    if (!stopping.has(proc)) console.log(`paca serve exited unasked (${code ?? signal}): ${stderr}`);
    resolve({ code, signal });
  }));
  const base = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`paca serve did not start in 60 s: ${stderr}`)), 60000);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/[^ ]+) \(model ([^)]+)\)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    proc.on('exit', () => reject(new Error(`paca serve exited: ${stderr}`)));
  });
  const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 120000 });
  return { proc, base, client, exited, stderr: () => stderr };
}

async function stopServer(s, what) {
  stopping.add(s.proc);
  s.proc.kill('SIGTERM');
  const timeout = new Promise((resolve) => setTimeout(() => resolve(null), 30000));
  const r = await Promise.race([s.exited, timeout]);
  check(r !== null && r.code === 0, `${what}: exits 0 on SIGTERM`, r ? show(r) : 'still running after 30 s');
  if (r === null) s.proc.kill('SIGKILL');
}

// `paca run ... --json` (the paca_generator path): {tokens, text, stop_reason}.
function pacaRun(modelPath, runArgs) {
  const r = spawnSync(paca, ['run', '-m', modelPath, '--threads', '1', '--json', ...runArgs], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`paca run ${runArgs.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}
const sampling = (t, p, seed) => ['--temperature', String(t), '--top-p', String(p), '--seed', String(seed)];

async function metrics(base) {
  const text = await (await fetch(`${base}/metrics`)).text();
  const value = (line) => {
    const m = text.match(new RegExp(`^${line.replace(/[{}"+.]/g, (c) => `\\${c}`)} (\\S+)$`, 'm'));
    return m ? Number(m[1]) : NaN;
  };
  return { text, value };
}

async function post(base, route, body, headers = { 'content-type': 'application/json' }) {
  const r = await fetch(`${base}${route}`, { method: 'POST', headers, body });
  const text = await r.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: r.status, json, text };
}

// OpenAI's error body: {"error": {"message", "type", "param", "code"}}.
function errorShape(r, status, what) {
  check(r.status === status, `${what}: HTTP ${status}`, `${r.status} ${r.text.slice(0, 200)}`);
  const e = r.json?.error;
  check(e && typeof e.message === 'string' && e.message.length > 0 && typeof e.type === 'string' && 'param' in e && 'code' in e,
        `${what}: OpenAI error body`, r.text.slice(0, 200));
}

// The chunks of a stream (or of a promise of one).
// Sends raw bytes on a new connection; what came back before the server closed it (or 5 s passed).
function raw(base, bytes, { closeEarly = false } = {}) {
  const u = new URL(base);
  return new Promise((resolve) => {
    let got = '';
    const sock = net.connect(Number(u.port), u.hostname, () => {
      sock.write(bytes);
      if (closeEarly) sock.destroy();
    });
    const done = () => resolve(got);
    sock.on('data', (d) => (got += d));
    sock.on('close', done);
    sock.on('error', done);
    sock.setTimeout(5000, () => sock.destroy());
  });
}

async function collect(streamOrPromise) {
  const stream = await streamOrPromise;
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  return chunks;
}

// ---- suites ------------------------------------------------------------------------

const PROMPT = 'Once upon a time';

async function storiesSuite() {
  const m = model('stories260K/stories260K.bin');
  if (!existsSync(m)) skip(`no ${m}`);
  const s = await startServer(m, ['--parallel', '4', '--queue', '16']);
  const c = s.client;
  try {
    const health = await (await fetch(`${s.base}/health`)).json();
    same(health.status, 'ok', '/health');
    const list = await c.models.list();
    same(list.data.map((x) => x.id), ['stories260K'], '/v1/models lists the model');
    same((await c.models.retrieve('stories260K')).id, 'stories260K', '/v1/models/{id}');

    // greedy: the text of paca run
    const greedyRef = pacaRun(m, ['-p', PROMPT, '-n', '24']);
    const greedy = await c.completions.create({ model: 'stories260K', prompt: PROMPT, max_tokens: 24, temperature: 0 });
    same(greedy.choices[0].text, greedyRef.text, 'greedy completion = paca run');
    same(greedy.choices[0].finish_reason, greedyRef.stop_reason === 'length' ? 'length' : 'stop', 'greedy finish_reason');
    same(greedy.usage.completion_tokens, greedyRef.tokens.length, 'usage.completion_tokens');
    same(greedy.usage.prompt_tokens, greedyRef.prompt_tokens.length, 'usage.prompt_tokens');
    check(greedy.object === 'text_completion' && greedy.id.startsWith('cmpl-'), 'completion object and id', show(greedy));

    // the prompt as token ids
    const ids = greedyRef.prompt_tokens;
    const byIds = await c.completions.create({ prompt: ids, max_tokens: 24, temperature: 0 });
    same(byIds.choices[0].text, greedyRef.text, 'prompt as token ids = paca run');

    // sampled, n = 3: choice j is the run with seed 42 + j
    const refs = [0, 1, 2].map((j) => pacaRun(m, ['-p', PROMPT, '-n', '32', ...sampling(0.9, 0.95, 42 + j)]));
    const n3 = await c.completions.create({ prompt: PROMPT, max_tokens: 32, temperature: 0.9, top_p: 0.95, seed: 42, n: 3 });
    same(n3.choices.map((x) => x.index), [0, 1, 2], 'n = 3: choices indexed');
    for (let j = 0; j < 3; ++j) same(n3.choices[j].text, refs[j].text, `n = 3: choice ${j} = paca run --seed ${42 + j}`);
    check(new Set(refs.map((r) => r.text)).size > 1, 'the seeds give different texts (the comparison means something)');

    // streaming: the chunks add up to the same text, then [DONE] (the client ends the iteration)
    const chunks = await collect(await c.completions.create({
      prompt: PROMPT, max_tokens: 32, temperature: 0.9, top_p: 0.95, seed: 43, stream: true,
      stream_options: { include_usage: true },
    }));
    const streamed = chunks.filter((x) => x.choices.length).map((x) => x.choices[0].text).join('');
    same(streamed, refs[1].text, 'streamed completion = paca run --seed 43');
    const finishes = chunks.filter((x) => x.choices.length && x.choices[0].finish_reason);
    same(finishes.length, 1, 'stream: one chunk has a finish_reason');
    const usage = chunks[chunks.length - 1];
    check(usage.choices.length === 0 && usage.usage?.completion_tokens === refs[1].tokens.length,
          'stream: the last chunk carries the usage', show(usage));
    check(chunks.length > 3, 'stream: the text comes in several chunks', String(chunks.length));

    // stop strings
    const stopRef = pacaRun(m, ['-p', PROMPT, '-n', '48', '--stop', 'Lily']);
    const stopped = await c.completions.create({ prompt: PROMPT, max_tokens: 48, temperature: 0, stop: ['Lily', 'zzz'] });
    same(stopped.choices[0].text, stopRef.text, 'stop string: text = paca run --stop');
    same(stopped.choices[0].finish_reason, 'stop', 'stop string: finish_reason');
    check(greedyRef.text.includes('Lily') && !stopped.choices[0].text.includes('Lily'), 'stop string cut the text', stopped.choices[0].text);

    // logprobs: one per token, <= 0, the pieces spell the text
    const lp = await c.completions.create({ prompt: PROMPT, max_tokens: 16, temperature: 0, logprobs: 0 });
    const l = lp.choices[0].logprobs;
    same(l.tokens.length, 16, 'logprobs: one entry per token');
    check(l.token_logprobs.every((x) => x <= 0), 'logprobs are <= 0', show(l.token_logprobs));
    same(l.tokens.join(''), lp.choices[0].text, 'logprobs: the tokens spell the text');
    same(lp.choices[0].text, greedyRef.text.slice(0, lp.choices[0].text.length), 'logprobs do not change the tokens');

    // logit_bias: banning the greedy first token changes the text; +100 on a token makes it every token
    const banned = await c.completions.create({ prompt: PROMPT, max_tokens: 8, temperature: 0, logprobs: 0,
      logit_bias: { [String(greedyRef.tokens[0])]: -100 } });
    const bannedPieces = banned.choices[0].logprobs.tokens;
    check(bannedPieces.length === 8 && bannedPieces.every((p) => p !== l.tokens[0]),
          'logit_bias -100 on the greedy first token: it is never generated', show(bannedPieces));
    const forcedId = greedyRef.tokens[1];
    const forced = await c.completions.create({ prompt: PROMPT, max_tokens: 4, temperature: 0, logprobs: 0,
      logit_bias: { [String(forcedId)]: 100 } });
    const forcedPieces = forced.choices[0].logprobs.tokens;
    check(forcedPieces.length === 4 && forcedPieces.every((p) => p === l.tokens[1]),
          'logit_bias +100: every token is the biased one', show(forcedPieces));
    await refused(c.completions.create({ prompt: PROMPT, logit_bias: { '99999': 1 } }), 400, 'logit_bias outside the vocabulary', 'logit_bias');

    // parallel requests: each gets exactly what it gets alone
    const seeds = [7, 8, 9, 10, 11, 12];
    const alone = seeds.map((sd) => pacaRun(m, ['-p', PROMPT, '-n', '40', ...sampling(1.0, 0.9, sd)]).text);
    const together = await Promise.all(seeds.map((sd, k) =>
      k % 2 ? collect(c.completions.create({ prompt: PROMPT, max_tokens: 40, temperature: 1.0, top_p: 0.9, seed: sd, stream: true }))
              .then((ch) => ch.map((x) => x.choices[0]?.text ?? '').join(''))
            : c.completions.create({ prompt: PROMPT, max_tokens: 40, temperature: 1.0, top_p: 0.9, seed: sd })
              .then((r) => r.choices[0].text)));
    for (let k = 0; k < seeds.length; ++k) same(together[k], alone[k], `parallel request ${k} (seed ${seeds[k]}) = paca run`);

    // chat on the built-in Llama 2 format
    const chatRef = pacaRun(m, ['--chat', '-p', 'Tell me a story.', '-n', '16']);
    const chat = await c.chat.completions.create({ messages: [{ role: 'user', content: 'Tell me a story.' }], max_tokens: 16, temperature: 0 });
    same(chat.choices[0].message.content, chatRef.text, 'chat (built-in format) = paca run --chat');

    // bad requests: 4xx with OpenAI's error body, the server unharmed
    await refused(c.completions.create({ prompt: PROMPT, temperature: 5 }), 400, 'temperature 5', 'temperature');
    await refused(c.completions.create({ prompt: PROMPT, max_tokens: 'many' }), 400, 'max_tokens a string', 'max_tokens');
    await refused(c.completions.create({ prompt: [1, 99999] }), 400, 'token id outside the vocabulary', 'prompt[1]');
    await refused(c.completions.create({ model: 'gpt-4', prompt: PROMPT }), 404, 'unknown model', 'model');
    await refused(c.completions.create({ prompt: PROMPT, n: 1000 }), 400, 'n too large', 'n');
    await refused(c.completions.create({ prompt: PROMPT, logprobs: 3 }), 400, 'logprobs alternatives', 'logprobs');
    await refused(c.completions.create({ prompt: PROMPT, echo: true }), 400, 'echo', 'echo');
    await refused(c.chat.completions.create({ messages: [] }), 400, 'no messages', 'messages');
    await refused(c.chat.completions.create({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] }),
                  400, 'an image part', 'messages[0].content[0].type');
    errorShape(await post(s.base, '/v1/completions', '{"prompt": "a",'), 400, 'truncated JSON');
    errorShape(await post(s.base, '/v1/completions', '[1, 2]'), 400, 'a JSON array body');
    const form = await post(s.base, '/v1/completions', '{"prompt": "a", "max_tokens": 2}', { 'content-type': 'application/x-www-form-urlencoded' });
    check(form.status === 200 && form.json?.choices?.length === 1, 'a body sent as a form is read as JSON', form.text.slice(0, 200));
    errorShape(await post(s.base, '/v1/completions', `{"prompt": ${'['.repeat(5000)}}`), 400, 'deep nesting');
    errorShape(await post(s.base, '/v1/completions', JSON.stringify({ prompt: 'x'.repeat(5 << 20) })), 413, 'a 5 MiB body');
    errorShape(await post(s.base, '/v1/completions', '\u0000\u00ff\u0001'), 400, 'binary garbage');
    errorShape(await post(s.base, '/v1/nothing', '{}'), 404, 'an unknown route');
    // hostile bytes on the socket itself
    const junk = await raw(s.base, 'NOT HTTP AT ALL\r\n\r\n');
    check(junk === '' || /^HTTP\/1\.1 4\d\d/.test(junk), 'a garbage request line: 4xx or closed', junk.slice(0, 80));
    await raw(s.base, 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"prom', { closeEarly: true });
    const hugeHeader = await raw(s.base, `GET /health HTTP/1.1\r\nHost: x\r\nX-A: ${'a'.repeat(100000)}\r\n\r\n`);
    check(hugeHeader === '' || /^HTTP\/1\.1 4\d\d/.test(hugeHeader), 'a 100 kB header: 4xx or closed', hugeHeader.slice(0, 80));
    const chunk = 'x'.repeat(1 << 20);
    const chunked = await raw(s.base, 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n' +
      `${(1 << 20).toString(16)}\r\n${chunk}\r\n`.repeat(6) + '0\r\n\r\n');
    check(/^HTTP\/1\.1 413/.test(chunked), 'a 6 MiB chunked body: 413', chunked.slice(0, 80));
    same((await (await fetch(`${s.base}/health`)).json()).status, 'ok', 'after hostile bytes the server is healthy');
    const ctxFull = await post(s.base, '/v1/completions', JSON.stringify({ prompt: 'word '.repeat(2000), max_tokens: 4 }));
    errorShape(ctxFull, 400, 'a prompt longer than the context');
    same(ctxFull.json?.error?.code, 'context_length_exceeded', 'context full: code');
    const after = await c.completions.create({ prompt: PROMPT, max_tokens: 24, temperature: 0 });
    same(after.choices[0].text, greedyRef.text, 'after the bad requests the server answers as before');

    // metrics
    const mt = await metrics(s.base);
    check(mt.value('paca_requests_total{route="/v1/completions",status="200"}') >= 10, 'metrics: completions 200 counted', mt.text);
    check(mt.value('paca_requests_total{route="/v1/completions",status="400"}') >= 5, 'metrics: completions 400 counted');
    check(mt.value('paca_requests_total{route="/v1/completions",status="404"}') >= 1, 'metrics: unknown model 404 counted');
    check(mt.value('paca_requests_total{route="/v1/completions",status="413"}') >= 1, 'metrics: 413 counted');
    check(mt.value('paca_requests_total{route="other",status="404"}') >= 1, 'metrics: unknown route counted as other');
    check(mt.value('paca_tokens_generated_total') >= 24 * 4, 'metrics: tokens generated');
    check(mt.value('paca_tokens_prefilled_total') >= 5, 'metrics: tokens prefilled');
    check(mt.value('paca_time_to_first_token_seconds_count') >= 10, 'metrics: time-to-first-token observations');
    check(mt.value('paca_engine_running') === 0 && mt.value('paca_engine_queue_depth') === 0, 'metrics: nothing running at rest');
    check(/^# TYPE paca_kv_blocks_used gauge$/m.test(mt.text) && !Number.isNaN(mt.value('paca_kv_blocks_total')),
          'metrics: KV blocks');
  } finally {
    await stopServer(s, 'stories260K server');
  }
}

const WEATHER = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'The weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 12 } }, required: ['city'] },
  },
};
const TIME = { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: { zone: { type: 'string', maxLength: 8 } } } } };

async function toolSuite(c, label) {
  // a forced call: the reply is a call of get_weather with arguments of its schema
  const forced = await c.chat.completions.create({
    messages: [{ role: 'user', content: 'Weather in Paris?' }], tools: [WEATHER, TIME], max_tokens: 64, temperature: 0.7, seed: 5,
    tool_choice: { type: 'function', function: { name: 'get_weather' } },
  });
  const fc = forced.choices[0];
  same(fc.finish_reason, 'tool_calls', `${label}: forced tool call: finish_reason`);
  same(fc.message.tool_calls?.[0]?.function?.name, 'get_weather', `${label}: forced tool call: name`);
  let argsOk = false;
  try {
    const a = JSON.parse(fc.message.tool_calls[0].function.arguments);
    argsOk = typeof a.city === 'string' && Object.keys(a).length === 1;
  } catch {}
  check(argsOk, `${label}: forced tool call: arguments follow the schema`, show(fc.message));
  check(typeof fc.message.tool_calls?.[0]?.id === 'string' && fc.message.tool_calls[0].type === 'function', `${label}: tool call id and type`);

  // the same request streamed: the same call in a tool_calls delta
  const chunks = await collect(await c.chat.completions.create({
    messages: [{ role: 'user', content: 'Weather in Paris?' }], tools: [WEATHER, TIME], max_tokens: 64, temperature: 0.7, seed: 5,
    tool_choice: { type: 'function', function: { name: 'get_weather' } }, stream: true,
  }));
  const calls = chunks.flatMap((x) => x.choices[0]?.delta?.tool_calls ?? []);
  same(calls.map((t) => [t.index, t.function.name, t.function.arguments]),
       fc.message.tool_calls.map((t, i) => [i, t.function.name, t.function.arguments]), `${label}: streamed tool call = non-streamed`);
  same(chunks.map((x) => x.choices[0]?.finish_reason).filter(Boolean), ['tool_calls'], `${label}: streamed finish_reason`);

  // "required": a call of one of the tools
  const req = await c.chat.completions.create({
    messages: [{ role: 'user', content: 'What time is it?' }], tools: [WEATHER, TIME], tool_choice: 'required', max_tokens: 64, temperature: 0,
  });
  check(['get_weather', 'get_time'].includes(req.choices[0].message.tool_calls?.[0]?.function?.name), `${label}: tool_choice required`,
        show(req.choices[0]));

  // the conversation goes on with the tool's result
  const next = await c.chat.completions.create({
    messages: [
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: null, tool_calls: fc.message.tool_calls },
      { role: 'tool', tool_call_id: fc.message.tool_calls[0].id, content: '{"temperature": 21}' },
    ],
    tools: [WEATHER, TIME], max_tokens: 8, temperature: 0,
  });
  check(next.choices.length === 1 && next.usage.prompt_tokens > forced.usage.prompt_tokens, `${label}: a tool result turn is rendered`,
        show(next.usage));
  await refused(c.chat.completions.create({ messages: [{ role: 'user', content: 'x' }], tools: [WEATHER],
                                            tool_choice: { type: 'function', function: { name: 'nope' } } }), 400, `${label}: unknown tool`);
}

async function llama3Suite() {
  const m = model('tiny-llama3');
  if (!existsSync(m)) skip(`no ${m}`);
  const s = await startServer(m, ['--parallel', '4', '--queue', '16']);
  const c = s.client;
  const SYSTEM = 'Be brief.';
  const USER = 'Hello there';
  const messages = [{ role: 'system', content: SYSTEM }, { role: 'user', content: USER }];
  try {
    // greedy chat: the text of paca run --chat
    const ref = pacaRun(m, ['--chat', '--system', SYSTEM, '-p', USER, '-n', '24']);
    const r = await c.chat.completions.create({ model: 'tiny-llama3', messages, max_tokens: 24, temperature: 0 });
    same(r.choices[0].message.content, ref.text, 'greedy chat = paca run --chat');
    same(r.choices[0].message.role, 'assistant', 'chat: role');
    same(r.usage.prompt_tokens, ref.prompt_tokens.length, 'chat: usage.prompt_tokens = the rendered prompt');
    check(r.object === 'chat.completion' && r.id.startsWith('chatcmpl-'), 'chat object and id');

    // sampled, n = 2, streamed and not
    const refs = [0, 1].map((j) => pacaRun(m, ['--chat', '--system', SYSTEM, '-p', USER, '-n', '24', ...sampling(0.8, 0.9, 100 + j)]));
    const n2 = await c.chat.completions.create({ messages, max_tokens: 24, temperature: 0.8, top_p: 0.9, seed: 100, n: 2 });
    for (let j = 0; j < 2; ++j) same(n2.choices[j].message.content, refs[j].text, `chat n = 2: choice ${j} = paca run --seed ${100 + j}`);
    const chunks = await collect(await c.chat.completions.create({ messages, max_tokens: 24, temperature: 0.8, top_p: 0.9, seed: 100, n: 2, stream: true }));
    for (let j = 0; j < 2; ++j) {
      const mine = chunks.filter((x) => x.choices[0]?.index === j);
      same(mine[0]?.choices[0]?.delta?.role, 'assistant', `chat stream choice ${j}: the first delta has the role`);
      same(mine.map((x) => x.choices[0].delta.content ?? '').join(''), refs[j].text, `chat stream choice ${j} = paca run`);
      same(mine.filter((x) => x.choices[0].finish_reason).length, 1, `chat stream choice ${j}: one finish_reason`);
    }

    // logprobs in chat
    const lp = await c.chat.completions.create({ messages, max_tokens: 8, temperature: 0, logprobs: true });
    const content = lp.choices[0].logprobs?.content ?? [];
    check(content.length >= 1 && content.length <= 8 && content.every((x) => x.logprob <= 0 && Array.isArray(x.bytes)),
          'chat logprobs', show(lp.choices[0].logprobs));

    // a JSON Schema: the reply parses and follows it
    const schema = { type: 'object', properties: { n: { type: 'integer' }, ok: { type: 'boolean' } }, required: ['n', 'ok'] };
    const js = await c.chat.completions.create({
      messages, max_tokens: 96, temperature: 0.5, seed: 3,
      response_format: { type: 'json_schema', json_schema: { name: 'x', schema } },
    });
    let parsed = null;
    try {
      parsed = JSON.parse(js.choices[0].message.content);
    } catch {}
    check(js.choices[0].finish_reason === 'stop' && parsed && Number.isInteger(parsed.n) && typeof parsed.ok === 'boolean',
          'response_format json_schema: the reply follows the schema', show(js.choices[0]));

    await toolSuite(c, 'tiny-llama3');

    // parallel chats, streamed and not: each equals its request alone
    const seeds = [21, 22, 23, 24];
    const alone = seeds.map((sd) => pacaRun(m, ['--chat', '--system', SYSTEM, '-p', USER, '-n', '32', ...sampling(1.0, 1.0, sd)]).text);
    const together = await Promise.all(seeds.map((sd, k) =>
      k % 2 ? collect(c.chat.completions.create({ messages, max_tokens: 32, temperature: 1.0, seed: sd, stream: true }))
              .then((ch) => ch.map((x) => x.choices[0]?.delta?.content ?? '').join(''))
            : c.chat.completions.create({ messages, max_tokens: 32, temperature: 1.0, seed: sd }).then((x) => x.choices[0].message.content)));
    for (let k = 0; k < seeds.length; ++k) same(together[k], alone[k], `parallel chat ${k} (seed ${seeds[k]}) = paca run`);

    // a client that disconnects mid-stream cancels its request
    const before = (await metrics(s.base)).value('paca_requests_cancelled_total{reason="client_disconnected"}');
    const abort = new AbortController();
    const stream = await c.chat.completions.create(
      { messages, max_tokens: 4000, temperature: 1.0, seed: 1, ignore_eos: true, stream: true }, { signal: abort.signal });
    let got = 0;
    await failure((async () => {  // aborting ends the iteration, with or without an error
      for await (const x of stream) {
        if (x.choices[0]?.delta?.content && ++got === 3) {
          abort.abort();
          break;
        }
      }
    })());
    same(got, 3, 'disconnect: the client read 3 chunks, then left');
    let cancelled = before;
    let running = -1;
    for (let t = 0; t < 100 && (cancelled <= before || running !== 0); ++t) {
      await new Promise((res) => setTimeout(res, 100));
      const mt = await metrics(s.base);
      cancelled = mt.value('paca_requests_cancelled_total{reason="client_disconnected"}');
      running = mt.value('paca_engine_running') + mt.value('paca_engine_queue_depth');
    }
    same(cancelled, before + 1, 'disconnect: the request was cancelled (metrics)');
    same(running, 0, 'disconnect: nothing left running');
    const gen = (await metrics(s.base)).value('paca_tokens_generated_total');
    await new Promise((res) => setTimeout(res, 500));
    same((await metrics(s.base)).value('paca_tokens_generated_total'), gen, 'disconnect: no tokens generated afterwards');

    // bad chat requests
    await refused(c.chat.completions.create({ messages: [{ role: 'wizard', content: 'x' }] }), 400, 'a bad role', 'messages[0].role');
    await refused(c.chat.completions.create({ messages, top_logprobs: 2, logprobs: true }), 400, 'top_logprobs', 'top_logprobs');
    await refused(c.chat.completions.create({ messages, response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object', minProperties: 1 } } } }),
                  400, 'an unsupported schema keyword');
  } finally {
    await stopServer(s, 'tiny-llama3 server');
  }

  // a full queue: one running, one waiting, the rest 429
  const q = await startServer(m, ['--parallel', '1', '--queue', '1']);
  try {
    const long = (sd) => q.client.chat.completions.create({ messages, max_tokens: 1500, temperature: 1.0, seed: sd, ignore_eos: true });
    const outcomes = await Promise.all([1, 2, 3, 4, 5].map((sd) => long(sd).then(() => 200, (e) => e.status ?? String(e))));
    check(outcomes.filter((x) => x === 429).length >= 1, 'queue overflow: 429', show(outcomes));
    check(outcomes.filter((x) => x === 200).length >= 1 && outcomes.every((x) => x === 200 || x === 429), 'queue overflow: the others answered',
          show(outcomes));
    const e = await failure(Promise.all([long(6), long(7), long(8)]));
    if (e) same(e.error?.code ?? e.code, 'queue_full', '429: code queue_full');
    const mt = await metrics(q.base);
    check(mt.value('paca_requests_total{route="/v1/chat/completions",status="429"}') >= 1, 'metrics: 429 counted', mt.text);
  } finally {
    await stopServer(q, 'tiny-llama3 queue server');
  }
}

async function llama31Suite() {
  const m = model('tiny-llama31');
  if (!existsSync(m)) skip(`no ${m}`);
  const s = await startServer(m, ['--parallel', '2']);
  try {
    // Llama 3.1's template renders the tools into the prompt
    const messages = [{ role: 'user', content: 'Weather in Paris?' }];
    const plain = await s.client.chat.completions.create({ messages, max_tokens: 4, temperature: 0 });
    const withTools = await s.client.chat.completions.create({ messages, tools: [WEATHER], max_tokens: 4, temperature: 0 });
    check(withTools.usage.prompt_tokens > plain.usage.prompt_tokens + 20, 'tools are rendered into the prompt',
          `${withTools.usage.prompt_tokens} vs ${plain.usage.prompt_tokens}`);
    const toolsJson = JSON.stringify([WEATHER]);
    const ref = pacaRun(m, ['--chat', '--tools', toolsJson, '-p', 'Weather in Paris?', '-n', '4']);
    same(withTools.usage.prompt_tokens, ref.prompt_tokens.length, 'the rendered prompt = paca run --chat --tools');
    same(withTools.choices[0].message.content ?? '', ref.text, 'chat with tools = paca run --chat --tools');
    await toolSuite(s.client, 'tiny-llama31');
  } finally {
    await stopServer(s, 'tiny-llama31 server');
  }
}

const suites = { stories: storiesSuite, llama3: llama3Suite, llama31: llama31Suite };
if (!suites[suite]) {
  console.log(`unknown --suite ${suite}`);
  process.exit(2);
}
const watchdog = setTimeout(() => {
  console.log(`serve_e2e (${suite}): timed out`);
  process.exit(1);
}, 500000);
try {
  await suites[suite]();
} catch (e) {
  failures.push(String(e));
  console.log(`FAIL ${e.stack ?? e}`);
}
clearTimeout(watchdog);
console.log(`serve_e2e (${suite}): ${checks - failures.length} passed, ${failures.length} failed`);
process.exit(failures.length ? 1 : 0);

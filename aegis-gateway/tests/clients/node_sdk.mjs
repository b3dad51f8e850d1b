// Drives a running Aegis gateway with the official `openai` Node SDK.
// Usage: node node_sdk.mjs BASE_URL API_KEY. Exits non-zero on the first failed check.
import assert from "node:assert/strict";
import OpenAI from "openai";

const [baseURL, apiKey] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });

// Non-streaming.
let r = await client.chat.completions.create({ model: "echo", messages: [{ role: "user", content: "hello" }] });
assert.equal(r.choices[0].message.content, "echo: hello");
assert.ok(r.usage.prompt_tokens > 0);

// Streaming with usage.
const stream = await client.chat.completions.create({
  model: "echo",
  messages: [{ role: "user", content: "hello streaming world" }],
  stream: true,
  stream_options: { include_usage: true },
});
let text = "";
let usage = null;
let finish = null;
for await (const chunk of stream) {
  if (chunk.usage) usage = chunk.usage;
  for (const c of chunk.choices) {
    text += c.delta.content ?? "";
    finish = c.finish_reason ?? finish;
  }
}
assert.equal(text, "echo: hello streaming world");
assert.equal(finish, "stop");
assert.ok(usage && usage.completion_tokens > 0);

// Tool calls.
r = await client.chat.completions.create({
  model: "echo",
  tools: [{ type: "function", function: { name: "get_weather", parameters: { type: "object" } } }],
  messages: [{ role: "user", content: '/call get_weather {"city": "Paris"}' }],
});
const call = r.choices[0].message.tool_calls[0];
assert.equal(call.function.name, "get_weather");
assert.deepEqual(JSON.parse(call.function.arguments), { city: "Paris" });

// Embeddings (base64 by default, decoded by the SDK).
const e = await client.embeddings.create({ model: "echo", input: ["alpha", "beta"] });
assert.equal(e.data.length, 2);
assert.equal(e.data[0].embedding.length, 16);

// Models.
const models = [];
for await (const m of client.models.list()) models.push(m.id);
assert.ok(models.includes("echo"), models.join(","));

// A blocked prompt.
await assert.rejects(
  client.chat.completions.create({ model: "echo", messages: [{ role: "user", content: "project nightingale?" }] }),
  (err) => err instanceof OpenAI.BadRequestError,
);

// A block mid-stream is an error, not a clean end.
await assert.rejects(async () => {
  const s = await client.chat.completions.create({
    model: "echo",
    messages: [{ role: "user", content: "say zebra please" }],
    stream: true,
  });
  for await (const _ of s) {
  }
});

// A wrong key.
const bad = new OpenAI({ baseURL, apiKey: "wrong-key", maxRetries: 0 });
await assert.rejects(
  bad.chat.completions.create({ model: "echo", messages: [{ role: "user", content: "hi" }] }),
  (err) => err instanceof OpenAI.AuthenticationError,
);

console.log("node openai SDK: all checks passed");

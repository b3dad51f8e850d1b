// The Node surface, run against the package as installed with npm into a temporary project
// (scripts/test-node.sh): chat, streams, scan, errors, approvals, and the golden suite the
// Rust and Python surfaces run too.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const { Pipeline, AegisError, ChatStream } = require('aegis-pipeline')

const ECHO = '[[providers]]\nid = "local"\ntype = "echo"\n'
const user = (content, extra = {}) => ({ model: 'local/echo-1', messages: [{ role: 'user', content }], ...extra })

test('chat answers an OpenAI completion with the run metadata', async () => {
  const p = Pipeline.fromToml(ECHO)
  const out = await p.chat(user('Hello, Aegis'))
  assert.equal(out.object, 'chat.completion')
  assert.equal(out.choices[0].message.content, 'echo: Hello, Aegis')
  assert.equal(out.aegis.provider, 'local')
  assert.equal(out.aegis.run_id.length, 36)
})

test('a stream is an async iterator adding up to the answer', async () => {
  const p = Pipeline.fromObject({ providers: [{ id: 'local', type: 'echo' }] })
  const stream = await p.chat(user('one two three', { stream: true }))
  assert.ok(stream instanceof ChatStream)
  let text = ''
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk')
    for (const c of chunk.choices) text += c.delta.content ?? ''
  }
  assert.equal(text, 'echo: one two three')
})

test('errors are AegisError with kind, status and run id', async () => {
  const p = Pipeline.fromToml(ECHO + '[[guardrails]]\nid = "w"\ntype = "ban_substrings"\nconfig = { substrings = ["forbidden"] }\n')
  await assert.rejects(p.chat(user('this is forbidden')), (e) => {
    assert.ok(e instanceof AegisError)
    assert.equal(e.kind, 'policy_blocked')
    assert.equal(e.status, 400)
    assert.ok(e.runId)
    return true
  })
  await assert.rejects(p.chat({ model: 'local/echo-1' }), (e) => e.kind === 'invalid_request')
  assert.throws(() => Pipeline.fromToml('[[providers]]\nid = 1\n'), (e) => e.kind === 'config')
  await assert.rejects(p.scan('x', { stage: 'sideways' }), (e) => e.kind === 'invalid_request')
})

test('a paused run resumes once on approval', async () => {
  const p = Pipeline.fromToml(ECHO + '[[guardrails]]\nid = "wires"\ntype = "ban_substrings"\nstages = ["input"]\nconfig = { substrings = ["wire"], action = "require_approval" }\n')
  const paused = await p.chat(user('wire 100 to bob'))
  assert.equal(paused.status, 'paused')
  const done = await p.resume(paused.id, 'approve')
  assert.equal(done.choices[0].message.content, 'echo: wire 100 to bob')
  await assert.rejects(p.resume(paused.id, 'approve'), (e) => e instanceof AegisError)
})

test('a process exits on its own once it is done with a pipeline', () => {
  const script = `
    const { Pipeline } = require('aegis-pipeline')
    const p = Pipeline.fromToml(${JSON.stringify(ECHO)})
    p.chat(${JSON.stringify(user('bye'))}).then((o) => console.log(o.choices[0].message.content))
  `
  const out = spawnSync(process.execPath, ['-e', script], { cwd: process.cwd(), timeout: 20000, encoding: 'utf8' })
  assert.equal(out.signal, null, 'not killed by the timeout: nothing kept Node alive')
  assert.equal(out.status, 0, out.stderr)
  assert.equal(out.stdout.trim(), 'echo: bye')
})

const suite = JSON.parse(readFileSync(process.env.AEGIS_GOLDEN_SUITE, 'utf8'))

async function chat (p, request) {
  try {
    const out = await p.chat(request)
    if (out.object === 'aegis.run') return { status: out.status }
    return { content: out.choices[0].message.content }
  } catch (e) {
    if (e instanceof AegisError) return { error: e.kind }
    throw e
  }
}

for (const c of suite.cases) {
  test(`golden: ${c.name}`, async () => {
    const p = Pipeline.fromToml(c.config)
    if (c.chat) assert.deepEqual(await chat(p, c.chat), c.expect_chat)
    if (c.scan) {
      const r = await p.scan(c.scan.text, { stage: c.scan.stage })
      assert.deepEqual({ verdict: r.verdict, sanitized: r.sanitized, kinds: r.findings.map((f) => f.kind) }, c.expect_scan)
    }
  })
}

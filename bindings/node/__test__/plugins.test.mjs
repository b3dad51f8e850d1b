// Guards, providers and retrievers written in JavaScript, registered under a type name and
// used from TOML — and what happens when they misbehave: a guard that throws, rejects,
// hangs or answers garbage blocks (per its fail_mode), never a crash of the process.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const aegis = require('aegis-pipeline')
const { Pipeline, AegisError, Verdict } = aegis

const ECHO = '[[providers]]\nid = "local"\ntype = "echo"\n'
const user = (content) => ({ model: 'local/echo-1', messages: [{ role: 'user', content }] })

class Keyword {
  static stages = ['input']
  constructor (config) { this.word = config.word ?? 'forbidden' }
  check (subject, ctx) {
    assert.equal(ctx.guard, 'g')
    for (const [i, segment] of subject.segments.entries()) {
      if (segment.text.includes(this.word)) return Verdict.block(`mentions ${this.word}`, { code: 'keyword' })
      const at = segment.text.indexOf('secret')
      if (at >= 0) {
        const [start, end] = Verdict.byteSpan(segment.text, at, at + 6)
        return Verdict.sanitize([{ segment: i, start, end, replacement: '[x]' }])
      }
    }
    return Verdict.allow()
  }
}
aegis.registerGuard('keyword', Keyword)

const guarded = (type, extra = '') => Pipeline.fromToml(ECHO + `[[guardrails]]\nid = "g"\ntype = "${type}"\n${extra}\n`)

test('a JavaScript guard blocks and sanitizes from TOML', async () => {
  const p = guarded('keyword', 'config = { word = "wire" }')
  await assert.rejects(p.chat(user('please wire the money')), (e) => e instanceof AegisError && e.kind === 'policy_blocked')
  const out = await p.chat(user('the café secret is out'))
  assert.equal(out.choices[0].message.content, 'echo: the café [x] is out')
  assert.equal((await p.scan('a secret')).sanitized, 'a [x]')
})

test('an async guard is awaited', async () => {
  aegis.registerGuard('later', class { async check () { await new Promise((resolve) => setTimeout(resolve, 10)); return Verdict.block('later', { code: 'later' }) } })
  await assert.rejects(guarded('later').chat(user('hi')), (e) => e.kind === 'policy_blocked')
})

for (const behaviour of ['throws', 'rejects', 'garbage', 'not_json', 'bad_edit', 'spoofed_code', 'no_method']) {
  test(`a guard that ${behaviour} fails closed, and open with fail_mode = "open"`, async () => {
    class Bad {
      check () {
        if (behaviour === 'throws') throw new Error('boom')
        if (behaviour === 'rejects') return Promise.reject(new Error('boom'))
        if (behaviour === 'garbage') return { decision: 'maybe' }
        if (behaviour === 'not_json') return { n: 10n }
        if (behaviour === 'bad_edit') return Verdict.sanitize([{ segment: 9, start: 0, end: 1, replacement: '' }])
        return Verdict.block('x', { code: 'guard_unavailable' })
      }
    }
    if (behaviour === 'no_method') Bad.prototype.check = undefined
    aegis.registerGuard(`bad_${behaviour}`, Bad)
    await assert.rejects(guarded(`bad_${behaviour}`).chat(user('hello')), (e) => e.kind === 'policy_blocked')
    const out = await guarded(`bad_${behaviour}`, 'fail_mode = "open"').chat(user('hello'))
    assert.equal(out.choices[0].message.content, 'echo: hello')
  })
}

test('a guard that never answers is cut off by its deadline', async () => {
  aegis.registerGuard('never', class { check () { return new Promise(() => {}) } })
  const started = Date.now()
  await assert.rejects(guarded('never', 'timeout_ms = 200').chat(user('hello')), (e) => e.kind === 'policy_blocked')
  assert.ok(Date.now() - started < 3000)
})

test('a constructor that throws fails the check, not the process', async () => {
  aegis.registerGuard('refuses', class { constructor () { throw new Error('needs an endpoint') } check () {} })
  await assert.rejects(guarded('refuses').chat(user('hello')), (e) => e.kind === 'policy_blocked' && /needs an endpoint/.test(e.message))
})

test('a built-in type name cannot be taken', () => {
  assert.throws(() => aegis.registerGuard('pii', Keyword), (e) => e.kind === 'invalid_request')
  assert.throws(() => aegis.registerGuard('bad name', Keyword), (e) => e.kind === 'invalid_request')
})

test('a JavaScript provider answers behind the guard chain', async () => {
  aegis.registerProvider('shouty', class {
    constructor (config) { this.prefix = config.prefix ?? '' }
    async chat (request) {
      const text = request.messages.at(-1).content
      return {
        id: 's', object: 'chat.completion', created: 0, model: request.model,
        choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content: this.prefix + text.toUpperCase() } }],
        usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 }
      }
    }
  })
  const p = Pipeline.fromToml('[[providers]]\nid = "loud"\ntype = "shouty"\nconfig = { prefix = "> " }\n[[guardrails]]\nid = "pii"\ntype = "pii"\n')
  const out = await p.chat({ model: 'loud/x', messages: [{ role: 'user', content: 'hi ada@example.org' }] })
  assert.equal(out.choices[0].message.content, '> HI <EMAIL_ADDRESS>')
  assert.equal(out.usage.total_tokens, 5)
  const stream = await p.chat({ model: 'loud/x', stream: true, messages: [{ role: 'user', content: 'hey' }] })
  let text = ''
  for await (const chunk of stream) for (const c of chunk.choices) text += c.delta.content ?? ''
  assert.equal(text, '> HEY')
})

test('a provider that never answers is cut off by its deadline', async () => {
  aegis.registerProvider('stuck', class { static timeout_ms = 300; chat () { return new Promise(() => {}) } })
  const p = Pipeline.fromToml('[[providers]]\nid = "s"\ntype = "stuck"\n')
  const started = Date.now()
  await assert.rejects(p.chat({ model: 's/x', messages: [{ role: 'user', content: 'hi' }] }), (e) => e.kind === 'timeout')
  assert.ok(Date.now() - started < 3000)
})

test('a secret in a plugin\'s exception never reaches the error', async () => {
  const key = 'sk-proj-7fQ2xLm9Rt4Vb8Nc1Zd6Hj3Kp5Ws0YgE2uA9iOqTr'
  aegis.registerProvider('leaky', class { chat () { throw new Error(`upstream said 401 for Authorization: Bearer ${key}`) } })
  const p = Pipeline.fromToml('[[providers]]\nid = "l"\ntype = "leaky"\n')
  await assert.rejects(p.chat({ model: 'l/x', messages: [{ role: 'user', content: 'hi' }] }), (e) => {
    assert.equal(e.kind, 'provider')
    assert.ok(e.message.includes('upstream said 401'), e.message)
    assert.ok(!e.message.includes(key) && e.message.includes('[REDACTED:'), e.message)
    return true
  })
})

test('plugins are registered on the main thread only', () => {
  const script = `
    const { Worker } = require('node:worker_threads')
    const w = new Worker("const a = require('aegis-pipeline'); try { a.registerGuard('w', class { check () {} }); console.log('registered') } catch (e) { console.log('refused') }", { eval: true })
    w.on('exit', () => {})
  `
  const out = spawnSync(process.execPath, ['-e', script], { cwd: process.cwd(), timeout: 20000, encoding: 'utf8' })
  assert.equal(out.status, 0, out.stderr)
  assert.equal(out.stdout.trim(), 'refused')
})

test('a retriever that ignores permissions still cannot leak', async () => {
  const prompts = []
  aegis.registerProvider('recorder', class {
    chat (request) {
      prompts.push(request.messages.map((m) => m.content).join(' | '))
      return { id: 'r', model: request.model, created: 0, choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content: 'ok' } }] }
    }
  })
  aegis.registerRetriever('leaky', class {
    retrieve () {
      return [
        { id: 'open', content: 'public note', metadata: { acl: { public: true } } },
        { id: 'sales', content: 'sales only', metadata: { acl: { teams: ['sales'] } } },
        { id: 'none', content: 'no acl at all' }
      ]
    }
  })
  const p = Pipeline.fromToml('[[providers]]\nid = "local"\ntype = "recorder"\n[[retrievers]]\nid = "docs"\ntype = "leaky"\n[[policies]]\nid = "rag"\ntype = "retrieval"\nconfig = { retriever = "docs", k = 3 }\n')
  const out = await p.chat({ model: 'local/x', messages: [{ role: 'user', content: 'anything' }] }, { principal: { id: 'ada', team: 'research' } })
  assert.deepEqual(out.aegis.retrieval.map((d) => d.id), ['open'])
  assert.match(prompts.at(-1), /public note/)
  assert.doesNotMatch(prompts.at(-1), /sales only|no acl at all/)
  await assert.rejects(p.chat({ model: 'local/x', messages: [{ role: 'user', content: 'x' }] }), (e) => e instanceof AegisError)
  assert.equal(aegis.aclAllows({ teams: ['research'] }, { id: 'ada', team: 'research' }), true)
  assert.equal(aegis.aclAllows({}, { id: 'ada' }), false)
})

test('registered plugins do not keep the process alive', () => {
  const script = `
    const aegis = require('aegis-pipeline')
    aegis.registerGuard('ok', class { check () { return aegis.Verdict.allow() } })
    const p = aegis.Pipeline.fromToml(${JSON.stringify(ECHO + '[[guardrails]]\nid = "g"\ntype = "ok"\n')})
    p.chat(${JSON.stringify(user('bye'))}).then((o) => console.log(o.choices[0].message.content))
  `
  const out = spawnSync(process.execPath, ['-e', script], { cwd: process.cwd(), timeout: 20000, encoding: 'utf8' })
  assert.equal(out.signal, null, 'exited on its own')
  assert.equal(out.status, 0, out.stderr)
  assert.equal(out.stdout.trim(), 'echo: bye')
})

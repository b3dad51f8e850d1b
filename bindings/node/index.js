'use strict'
// The public API of `aegis-pipeline`: a thin wrapper over the native addon (native.js)
// that gives streams an async iterator and errors their fields. No policy logic here.

const native = require('./native.js')

/** An error of the governed pipeline, with the gateway's fields. */
class AegisError extends Error {
  constructor (fields) {
    super(fields.message)
    this.name = 'AegisError'
    /** `policy_blocked`, `invalid_request`, `budget_exceeded`, ... */
    this.kind = fields.kind
    /** The stable machine code. */
    this.code = fields.code
    /** The run the error ended, or null. */
    this.runId = fields.run_id ?? null
    /** The HTTP status the gateway would answer. */
    this.status = fields.status ?? null
    /** Structured details, or null. */
    this.details = fields.details ?? null
  }
}

const PREFIX = 'aegis:'

/** `e` as an AegisError when the native side raised one. */
function translate (e) {
  if (e && typeof e.message === 'string' && e.message.startsWith(PREFIX)) {
    try {
      return new AegisError(JSON.parse(e.message.slice(PREFIX.length)))
    } catch (_) {}
  }
  return e
}

// `f()` may throw, answer a value, or answer a Promise (a native call that finished at once
// answers its value): all three end as a Promise, with errors translated.
async function call (f) {
  try {
    return await f()
  } catch (e) {
    throw translate(e)
  }
}

function sync (f) {
  try {
    return f()
  } catch (e) {
    throw translate(e)
  }
}

// ---- Plugins written in JavaScript. The native side sends every call as one JSON message
// ({ticket, type, id, config, method, args}); this answers each with `settle`, whatever the
// plugin does — returns, throws, rejects, returns something that is not JSON.

const types = new Map() // plugin type name -> factory
const instances = new Map() // config entry (an opaque id per built pipeline) -> {type, instance}

function instanceFor (m) {
  const key = m.instance
  const known = instances.get(key)
  if (known !== undefined) return known.instance
  const factory = types.get(m.type)
  if (factory === undefined) throw new Error(`no JavaScript plugin type \`${m.type}\` is registered`)
  const instance = new factory(m.config) // eslint-disable-line new-cap
  instances.set(key, { type: m.type, instance })
  return instance
}

function shortly (e) {
  const text = e instanceof Error ? `${e.name}: ${e.message}` : `threw ${String(e)}`
  return text.length > 300 ? text.slice(0, 300) + '…' : text
}

// Plugins live on the main thread: one host per process (a worker's would answer calls
// with its own plugin table, and close with the worker).
const { isMainThread } = require('node:worker_threads')
if (isMainThread) native.setPluginHost((text) => {
  let m
  try {
    m = JSON.parse(text)
  } catch (_) {
    return
  }
  if (m.method === 'release') {
    // The config entry's pipeline is gone: forget its instance.
    instances.delete(m.instance)
    return
  }
  Promise.resolve()
    .then(async () => {
      const instance = instanceFor(m)
      if (typeof instance[m.method] !== 'function') {
        throw new Error(`the plugin object has no \`${m.method}\` method`)
      }
      const out = await instance[m.method](...m.args)
      return JSON.stringify(out === undefined ? null : out)
    })
    .then(
      (json) => native.settle(m.ticket, true, json),
      (e) => native.settle(m.ticket, false, shortly(e))
    )
})

function register (kind, name, factory, stages) {
  if (!isMainThread) throw new Error('JavaScript plugins are registered on the main thread')
  if (typeof factory !== 'function') throw new TypeError('a plugin factory is a class (or constructor function)')
  const timeoutMs = factory.timeout_ms ?? factory.timeoutMs ?? null
  sync(() => native.registerPlugin(kind, name, stages ?? null, timeoutMs))
  types.set(name, factory)
  for (const [key, entry] of instances) {
    if (entry.type === name) instances.delete(key)
  }
}

/**
 * Registers a guard type written in JavaScript: `new Factory(config)` per `[[guardrails]]`
 * entry; its `check(subject, ctx)` (sync or async) returns a verdict (`Verdict.allow()`, ...).
 * `Factory.stages` (optional) lists the stages it judges.
 */
function registerGuard (name, factory) {
  register('guardrails', name, factory, factory.stages)
}

/** Registers a provider type: `chat(request)` returns a chat.completion object. */
function registerProvider (name, factory) {
  register('providers', name, factory)
}

/**
 * Registers a retriever type: `retrieve(query, k, filter, ctx)` returns documents
 * (`{id, content, metadata, score}`); Aegis drops any the caller's ACL does not admit.
 */
function registerRetriever (name, factory) {
  register('retrievers', name, factory)
}

/** A guard's answer in the `aegis.guard.v1` shape. Offsets are UTF-8 bytes. */
const Verdict = {
  allow: ({ findings = [], score = 0 } = {}) => ({ decision: 'allow', findings, score }),
  block: (reason, { code = 'blocked', findings = [], score = 1 } = {}) =>
    ({ decision: 'block', reason, code, findings, score }),
  sanitize: (edits, { findings = [], score = 1 } = {}) => ({ decision: 'sanitize', edits, findings, score }),
  requireApproval: (reason, { payload = {}, score = 1 } = {}) =>
    ({ decision: 'require_approval', reason, payload, score }),
  /** The UTF-8 byte offsets of `text.slice(start, end)`. */
  byteSpan: (text, start, end) => {
    const head = Buffer.byteLength(text.slice(0, start))
    return [head, head + Buffer.byteLength(text.slice(start, end))]
  }
}

/** Whether `principal` may read a document whose `metadata.acl` is `acl`. */
function aclAllows (acl, principal) {
  return sync(() => native.aclAllows(acl, principal))
}

/** A streamed answer: `for await (const chunk of stream)` yields chat.completion.chunk objects. */
class ChatStream {
  constructor (inner) {
    this._inner = inner
    /** The run's metadata: run_id, provider, guards, region, retrieval. */
    this.aegis = inner.meta()
  }

  async * [Symbol.asyncIterator] () {
    try {
      while (true) {
        const chunk = await call(() => this._inner.next())
        if (chunk === null) return
        yield chunk
      }
    } finally {
      await this._inner.close()
    }
  }

  /** Ends the stream (and its run) now. */
  close () {
    return this._inner.close()
  }
}

/** A governed pipeline, built from TOML or an object with the built-in plugin types. */
class Pipeline {
  constructor (inner) {
    this._inner = inner
  }

  /** A pipeline from TOML text; `store` is a database URL keeping runs, approvals, budgets. */
  static fromToml (text, { store } = {}) {
    return new Pipeline(sync(() => native.NativePipeline.fromToml(text, store ?? null)))
  }

  /** A pipeline from an object shaped like the TOML file. */
  static fromObject (config, { store } = {}) {
    return new Pipeline(sync(() => native.NativePipeline.fromObject(config, store ?? null)))
  }

  /**
   * Runs an OpenAI-shaped chat request: a chat.completion object (Aegis's metadata under
   * `aegis`), a ChatStream when `request.stream` is true, or a paused run
   * (`{object: 'aegis.run', status: 'paused', id}`) to `resume`.
   */
  async chat (request, { principal } = {}) {
    if (request && request.stream) {
      const inner = await call(() => this._inner.stream(request, principal ?? null))
      const paused = inner.paused()
      return paused ?? new ChatStream(inner)
    }
    return call(() => this._inner.chat(request, principal ?? null))
  }

  /** Decides a paused run: `approve`, `reject` (with `reason`) or `edit` (with `value`). */
  resume (runId, decision = 'approve', { reason, value } = {}) {
    return call(() => this._inner.resume(runId, decision, reason ?? null, value === undefined ? null : value))
  }

  /** Judges `text` with the guard chain: (a Promise of) the report `aegis scan` prints. */
  scan (text, { stage = 'input' } = {}) {
    return call(() => this._inner.scan(text, stage))
  }

  /** The `provider/model` names the pipeline routes. */
  models () {
    return this._inner.models()
  }

  /** The lifecycle graph as Mermaid text. */
  graphMermaid () {
    return this._inner.graphMermaid()
  }
}

module.exports = {
  AegisError,
  ChatStream,
  Pipeline,
  Verdict,
  aclAllows,
  registerGuard,
  registerProvider,
  registerRetriever
}

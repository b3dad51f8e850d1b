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

async function call (promise) {
  try {
    return await promise
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

/** A streamed answer: `for await (const chunk of stream)` yields chat.completion.chunk objects. */
class ChatStream {
  constructor (inner) {
    this._inner = inner
    /** The run's metadata: run_id, provider, guards, region, retrieval. */
    this.aegis = inner.meta()
  }

  async * [Symbol.asyncIterator] () {
    try {
      const whole = this._inner.first()
      if (whole) {
        yield whole
        return
      }
      while (true) {
        const chunk = await call(this._inner.next())
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
      const inner = await call(this._inner.stream(request, principal ?? null))
      const paused = inner.paused()
      return paused ?? new ChatStream(inner)
    }
    return call(this._inner.chat(request, principal ?? null))
  }

  /** Decides a paused run: `approve`, `reject` (with `reason`) or `edit` (with `value`). */
  resume (runId, decision = 'approve', { reason, value } = {}) {
    return call(this._inner.resume(runId, decision, reason ?? null, value === undefined ? null : value))
  }

  /** Judges `text` with the guard chain: the report `aegis scan` prints. */
  scan (text, { stage = 'input' } = {}) {
    return sync(() => this._inner.scan(text, stage))
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

module.exports = { AegisError, ChatStream, Pipeline }

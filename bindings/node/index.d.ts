/** Types of `aegis-pipeline`. */

export type Json = { [key: string]: any }
export type Stage = 'input' | 'output' | 'tool_result' | 'retrieved'

/** An error of the governed pipeline, with the gateway's fields. */
export declare class AegisError extends Error {
  /** `policy_blocked`, `invalid_request`, `budget_exceeded`, ... */
  kind: string
  /** The stable machine code. */
  code: string
  /** The run the error ended, or null. */
  runId: string | null
  /** The HTTP status the gateway would answer. */
  status: number | null
  /** Structured details, or null. */
  details: any
}

/** A streamed answer of chat.completion.chunk objects. */
export declare class ChatStream implements AsyncIterable<Json> {
  /** The run's metadata: run_id, provider, guards, region, retrieval. */
  readonly aegis: Json
  [Symbol.asyncIterator](): AsyncIterator<Json>
  /** Ends the stream (and its run) now. */
  close(): Promise<void>
}

/** A governed pipeline built from TOML or an object. */
export declare class Pipeline {
  static fromToml(text: string, options?: { store?: string }): Pipeline
  static fromObject(config: Json, options?: { store?: string }): Pipeline
  /** A chat.completion, a ChatStream (`stream: true`), or a paused run. */
  chat(request: Json, options?: { principal?: Json }): Promise<Json | ChatStream>
  resume(
    runId: string,
    decision?: 'approve' | 'reject' | 'edit',
    options?: { reason?: string, value?: any }
  ): Promise<Json>
  scan(text: string, options?: { stage?: Stage }): Promise<Json>
  models(): string[]
  graphMermaid(): string
}

/** What a guard plugin's instance provides. */
export interface Guard {
  check(subject: Json, ctx: Json): Json | Promise<Json>
}

/** A plugin class: constructed with its config entry's `config` table. */
export type PluginClass<T> = (new (config: Json) => T) & { stages?: Stage[] }

export declare function registerGuard(name: string, factory: PluginClass<Guard>): void
export declare function registerProvider(name: string, factory: PluginClass<{ chat(request: Json): Json | Promise<Json> }>): void
export declare function registerRetriever(
  name: string,
  factory: PluginClass<{ retrieve(query: string, k: number, filter: Json | null, ctx: Json): Json[] | Promise<Json[]> }>
): void
export declare function aclAllows(acl: Json, principal: Json): boolean

/** A guard's answer in the `aegis.guard.v1` shape. */
export declare const Verdict: {
  allow(options?: { findings?: Json[], score?: number }): Json
  block(reason: string, options?: { code?: string, findings?: Json[], score?: number }): Json
  sanitize(edits: Json[], options?: { findings?: Json[], score?: number }): Json
  requireApproval(reason: string, options?: { payload?: any, score?: number }): Json
  byteSpan(text: string, start: number, end: number): [number, number]
}

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
  scan(text: string, options?: { stage?: Stage }): Json
  models(): string[]
  graphMermaid(): string
}

// The Node side of the bindings bench (`benches/bindings/run.sh`): governed echo calls
// through `aegis-pipeline` (installed from its packed tarball), the same cases as
// baseline.rs, plus a guard written in JavaScript. One JSON line per case (µs).
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const aegis = require('aegis-pipeline')

const N = 5000
const WARM = 500
const ECHO = '[[providers]]\nid = "local"\ntype = "echo"\n'
const PROMPT = 'x '.repeat(512)

aegis.registerGuard('bench_allow', class {
  static stages = ['input']
  check () { return aegis.Verdict.allow() }
})

function percentiles (ns) {
  ns.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
  const at = (p) => Number(ns[Math.min(Math.floor(ns.length * p), ns.length - 1)]) / 1000
  return [at(0.5), at(0.99)]
}

async function bench (name, toml) {
  const p = aegis.Pipeline.fromToml(toml)
  const request = { model: 'local/echo-1', messages: [{ role: 'user', content: PROMPT }] }
  for (let i = 0; i < WARM; i++) await p.chat(request)
  const ns = []
  for (let i = 0; i < N; i++) {
    const started = process.hrtime.bigint()
    await p.chat(request)
    ns.push(process.hrtime.bigint() - started)
  }
  const [p50, p99] = percentiles(ns)
  console.log(JSON.stringify({ surface: 'node', case: name, p50_us: +p50.toFixed(1), p99_us: +p99.toFixed(1) }))
}

await bench('echo, default graph, no guards', ECHO)
await bench('echo + one input guard (built-in ban_substrings)',
  ECHO + '[[guardrails]]\nid = "words"\ntype = "ban_substrings"\nstages = ["input"]\nconfig = { substrings = ["forbidden"] }\n')
await bench('echo + one input guard written in JavaScript (allows)',
  ECHO + '[[guardrails]]\nid = "js"\ntype = "bench_allow"\n')

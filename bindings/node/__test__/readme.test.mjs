// The README's examples run: each ```js block, in order, as the body of an async function
// with `require` bound to the installed package.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const readme = readFileSync(process.env.AEGIS_NODE_README, 'utf8')
const blocks = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1])

test('the README has examples', () => {
  assert.ok(blocks.length >= 2)
})

test('every README example runs', async () => {
  const AsyncFunction = (async () => {}).constructor
  for (const block of blocks) {
    await new AsyncFunction('require', 'assert', block)(require, assert)
  }
})

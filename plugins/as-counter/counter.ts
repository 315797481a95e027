// The counter recipe in AssemblyScript: the twin of the Rust `counter` plugin's core (the same
// behaviour test runs against both). Inputs are JSON: {"add":N} (apply) returns the new value;
// "get" (query) returns it. Stored as decimal text under key "n".
//
// Build: guest-sdk/assemblyscript/node_modules/.bin/asc counter.ts -O3 --runtime stub --use abort= -o counter.wasm
// A bare core module: corral embeds the WIT and makes the component at deploy.

import { err, kvGet, kvPut, ok, readString } from "../../guest-sdk/assemblyscript/corral";
export { cabi_realloc } from "../../guest-sdk/assemblyscript/corral";

const MAX_SAFE: i64 = 9007199254740991;

function counter(): i64 {
  const v = kvGet("n");
  return v == null ? 0 : I64.parseInt(v);
}

/// The number in {"add":N}, or null if the input is not exactly that.
function parseAdd(input: string): string | null {
  if (!input.startsWith('{"add":') || !input.endsWith("}")) return null;
  const num = input.slice(7, input.length - 1);
  if (num.length == 0 || num.length > 16) return null;
  for (let i = 0; i < num.length; i++) {
    const c = num.charCodeAt(i);
    if (!(c >= 48 && c <= 57) && !(i == 0 && c == 45 && num.length > 1)) return null;
  }
  return num;
}

export function apply(index: i64, timeMs: i64, session: i64, idPtr: usize, idLen: usize, admin: bool, inPtr: usize, inLen: usize): usize {
  const num = parseAdd(readString(inPtr, inLen));
  if (num == null) return err('bad input: expected {"add":N}');
  const n = counter() + I64.parseInt(num);
  if (n > MAX_SAFE || n < -MAX_SAFE) return err("overflow");
  kvPut("n", n.toString());
  return ok(n.toString());
}

export function query(index: i64, timeMs: i64, session: i64, idPtr: usize, idLen: usize, admin: bool, inPtr: usize, inLen: usize): usize {
  if (readString(inPtr, inLen) != '"get"') return err('bad input: expected "get"');
  return ok(counter().toString());
}

export function expire(index: i64, timeMs: i64, session: i64, idPtr: usize, idLen: usize, admin: bool, ended: i64): void {}

export function timer(index: i64, timeMs: i64, session: i64, idPtr: usize, idLen: usize, admin: bool, tagPtr: usize, tagLen: usize): void {}

// corral's plugin contract for AssemblyScript: the canonical-ABI glue a bare core module needs
// (corral embeds the WIT and makes the component at deploy). Import what you need from here,
// and re-export `cabi_realloc` from your entry file:
//
//   export { cabi_realloc } from "../../guest-sdk/assemblyscript/corral";
//
// Then write `apply`, `query`, `expire` and `timer` with the flat signatures below (see
// plugins/as-counter/counter.ts). Build: asc counter.ts -O3 --runtime stub --use abort=
//
// Lists cross the boundary as (pointer, length) into linear memory; a result is written to a
// return area and its address returned.

const HOST = "corral:plugin/host@1.0.0";

// @ts-ignore: decorator
@external("corral:plugin/host@1.0.0", "get")
declare function host_get(keyPtr: usize, keyLen: usize, ret: usize): void;
// @ts-ignore: decorator
@external("corral:plugin/host@1.0.0", "put")
declare function host_put(keyPtr: usize, keyLen: usize, valPtr: usize, valLen: usize): void;
// @ts-ignore: decorator
@external("corral:plugin/host@1.0.0", "delete")
declare function host_delete(keyPtr: usize, keyLen: usize): void;
// @ts-ignore: decorator
@external("corral:plugin/host@1.0.0", "notify")
declare function host_notify(session: u64, ptr: usize, len: usize): void;
// @ts-ignore: decorator
@external("corral:plugin/host@1.0.0", "log")
declare function host_log(ptr: usize, len: usize): void;

/// The allocator the host calls to pass lists in (canonical ABI `cabi_realloc`).
export function cabi_realloc(oldPtr: usize, oldSize: usize, align: usize, newSize: usize): usize {
  if (newSize == 0) return align;
  if (oldPtr == 0) return heap.alloc(newSize);
  return heap.realloc(oldPtr, newSize);
}

/// Bytes at (ptr, len) as a UTF-8 string.
export function readString(ptr: usize, len: usize): string {
  return String.UTF8.decodeUnsafe(ptr, len, false);
}

function utf8(s: string): ArrayBuffer {
  return String.UTF8.encode(s, false);
}

/// The value under `key` (a UTF-8 string) in the plugin's namespace, as a string; null if none.
export function kvGet(key: string): string | null {
  const k = utf8(key);
  const ret = heap.alloc(12);
  host_get(changetype<usize>(k), k.byteLength, ret);
  if (load<u8>(ret) == 0) return null;
  return readString(load<u32>(ret, 4), load<u32>(ret, 8));
}

export function kvPut(key: string, value: string): void {
  const k = utf8(key);
  const v = utf8(value);
  host_put(changetype<usize>(k), k.byteLength, changetype<usize>(v), v.byteLength);
}

export function kvDelete(key: string): void {
  const k = utf8(key);
  host_delete(changetype<usize>(k), k.byteLength);
}

export function notify(session: u64, payload: string): void {
  const p = utf8(payload);
  host_notify(session, changetype<usize>(p), p.byteLength);
}

export function log(message: string): void {
  const m = utf8(message);
  host_log(changetype<usize>(m), m.byteLength);
}

/// `result<list<u8>, string>` for `apply` / `query`: ok(text) or err(message).
function result(isErr: bool, text: string): usize {
  const b = utf8(text);
  const ret = heap.alloc(12);
  store<u8>(ret, isErr ? 1 : 0);
  store<u32>(ret, changetype<usize>(b), 4);
  store<u32>(ret, b.byteLength, 8);
  return ret;
}

export function ok(text: string): usize {
  return result(false, text);
}

export function err(message: string): usize {
  return result(true, message);
}

// Owns what an internal failure does in the OPA module: it reports through the one abort
// hook OPA hosts provide (`env.opa_abort`, a NUL-terminated message), which makes the host
// raise an error; AssemblyScript's default `env.abort` import does not exist there.
// Inputs never get here (they get error results); only a bug in the module can.

// @ts-ignore: decorator
@external("env", "opa_abort")
declare function opaAbortImport(message: usize): void;

const MESSAGE_CAPACITY: usize = 256;
const message: usize = memory.data(<i32>MESSAGE_CAPACITY);

export function portcullisAbort(text: string | null, _file: string | null, _line: u32, _column: u32): void {
  const prefix = "portcullis: internal error: ";
  let n: usize = 0;
  for (let i = 0; i < prefix.length && n < MESSAGE_CAPACITY - 1; i++) store<u8>(message + n++, <u8>prefix.charCodeAt(i));
  if (text !== null) {
    for (let i = 0; i < text.length && n < MESSAGE_CAPACITY - 1; i++) {
      const c = text.charCodeAt(i);
      store<u8>(message + n++, <u8>(c < 0x80 ? c : 0x3f));
    }
  }
  store<u8>(message + n, 0);
  opaAbortImport(message);
  unreachable();
}

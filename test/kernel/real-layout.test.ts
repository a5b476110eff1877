// The C structs of kernel-bridge/bpf/portcullis.h, as compiled into the BPF object, have
// exactly the sizes and field offsets of the TypeScript encoders (layout.ts LAYOUT, and the
// loader's event layout and struct sizes): read from the object's BTF through libbpf.
import { describe, expect, it } from "vitest";
import { LAYOUT } from "../../kernel-bridge/layout.js";
import { artifacts, EVENT_LAYOUT, LOADER_STRUCT_SIZES, native } from "../../kernel-bridge/loader.js";
import { kernelGate } from "../support/kernel.js";

const unavailable = kernelGate("BTF layout");

describe.skipIf(unavailable !== undefined)("map layout: object BTF = layout.ts", () => {
  const expected = { ...LAYOUT, pc_event: EVENT_LAYOUT };

  it.each(Object.keys(expected))("struct %s", (name) => {
    const btf = native().btfStructs(artifacts.object());
    expect(btf[name], `struct ${name} is not in the object's BTF`).toBeDefined();
    const want = expected[name as keyof typeof expected];
    expect({ size: btf[name]!.size, fields: btf[name]!.fields }).toEqual({ size: want.size, fields: want.fields });
  });

  it("the loader's own structs have the sizes it writes", () => {
    const btf = native().btfStructs(artifacts.object());
    expect(Object.fromEntries(Object.keys(LOADER_STRUCT_SIZES).map((name) => [name, btf[name]?.size]))).toEqual(LOADER_STRUCT_SIZES);
  });
});

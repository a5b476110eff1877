// Owns building the arrays that the table builder's hot loops index, so that V8 sees one
// array shape at each site.
//
// Why: `Array.prototype.map` returns a packed or a holey array depending on which tier
// runs it (the builtin, or TurboFan's inlined copy), so the arrays one site makes change
// shape once their caller is optimised. The code reading them was optimised for the other
// shape and is thrown away ("wrong map" deoptimisations), and optimised again: on the
// 10,000-rule set `groupRows` (65 to 125 ms of TurboFan each) was compiled 7 times in one
// cold run, 4 with these arrays packed. An array grown by `push` from `[]` is always packed.

/** `list.map(f)`, always a packed array. */
export function packedMap<T, U>(list: ArrayLike<T>, f: (item: T, index: number) => U): U[] {
  const out: U[] = [];
  for (let i = 0; i < list.length; i++) out.push(f(list[i]!, i));
  return out;
}

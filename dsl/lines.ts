// Owns turning an offset into a 1-based line and column, counted as chevrotain's lexer
// counts them with full position tracking: `\n`, `\r\n` and a lone `\r` each end a line,
// columns are UTF-16 code units. The parser's lexer tracks offsets only (half the work and
// half the memory per token); spans get their line and column here.
import type { Span } from "./ast.js";

export class LineMap {
  /** Offset at which each line starts; `starts[0]` is 0. */
  private readonly starts: Int32Array;
  /** The line of the last lookup: spans are mostly asked for in increasing order. */
  private hint = 0;

  constructor(text: string) {
    this.starts = text.includes("\r") ? startsWithCarriageReturns(text) : startsOfNewlines(text);
  }

  /** 0-based index of the line holding `offset`. */
  private lineIndex(offset: number): number {
    const starts = this.starts;
    const last = starts.length - 1;
    let i = this.hint;
    if (starts[i]! <= offset) {
      if (i === last || offset < starts[i + 1]!) return i;
      if (i + 1 === last || offset < starts[i + 2]!) return (this.hint = i + 1);
    }
    let low = 0;
    let high = last;
    while (low < high) {
      const mid = (low + high + 1) >>> 1;
      if (starts[mid]! <= offset) low = mid;
      else high = mid - 1;
    }
    return (this.hint = low);
  }

  /** 1-based line and column of `offset`, as `[line, column]`. */
  position(offset: number): [number, number] {
    const i = this.lineIndex(offset);
    return [i + 1, offset - this.starts[i]! + 1];
  }

  /** The span of `length` code units at `offset` in `file`. */
  span(file: string, offset: number, length: number): Span {
    const i = this.lineIndex(offset);
    return { file, line: i + 1, column: offset - this.starts[i]! + 1, offset, length };
  }
}

function startsOfNewlines(text: string): Int32Array {
  let count = 1;
  for (let i = text.indexOf("\n"); i >= 0; i = text.indexOf("\n", i + 1)) count++;
  const starts = new Int32Array(count);
  let n = 1;
  for (let i = text.indexOf("\n"); i >= 0; i = text.indexOf("\n", i + 1)) starts[n++] = i + 1;
  return starts;
}

function startsWithCarriageReturns(text: string): Int32Array {
  const starts: number[] = [0];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 10) starts.push(i + 1);
    else if (c === 13) {
      if (text.charCodeAt(i + 1) === 10) i++;
      starts.push(i + 1);
    }
  }
  return Int32Array.from(starts);
}

// Owns the statistics the benchmark sections share.

/** The median of `xs` (the upper of the two middle values when their count is even). */
export function median(xs: readonly number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[sorted.length >> 1]!;
}

/** First index of the ascending `items` for which `before` is false (items.length when none). */
export function lowerBound(items: ArrayLike<number>, before: (item: number) => boolean): number {
  let lo = 0;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (before(items[mid]!)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

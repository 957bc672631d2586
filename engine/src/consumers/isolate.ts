import { toError } from "@flowmonkey/shared";

/**
 * Runs a batch; when the batch fails as a whole, runs its items one by one so that one bad
 * item cannot hold back the others, and reports only the items that fail on their own.
 */
export async function processIsolated<T>(
  items: T[],
  process: (items: T[]) => Promise<void>,
  onItemFailure: (item: T, err: Error) => void,
): Promise<void> {
  try {
    await process(items);
  } catch (err) {
    if (items.length === 1) return onItemFailure(items[0]!, toError(err));
    for (const item of items) {
      try {
        await process([item]);
      } catch (itemErr) {
        onItemFailure(item, toError(itemErr));
      }
    }
  }
}

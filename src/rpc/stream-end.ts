/**
 * Calls `done` once when a response stream ends: completed (no error), failed, or abandoned by its
 * consumer (`return()`, e.g. the client went away). Interceptors use it to log and count streaming
 * RPCs at their real end rather than when the handler returned its iterable.
 */
export function onStreamEnd<T>(source: AsyncIterable<T>, done: (err: unknown) => void): AsyncIterable<T> {
  let ended = false;
  const end = (err: unknown) => {
    if (ended) return;
    ended = true;
    done(err);
  };
  return {
    async *[Symbol.asyncIterator]() {
      try {
        yield* source;
        end(undefined);
      } catch (err) {
        end(err);
        throw err;
      } finally {
        end(undefined);
      }
    },
  };
}

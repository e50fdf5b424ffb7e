/**
 * Calls `done` once when a response stream ends: completed (no error), failed, or abandoned by its
 * consumer (`return()`, e.g. the client went away). Interceptors use it to log and count streaming
 * RPCs at their real end rather than when the handler returned its iterable.
 *
 * A consumer may also just stop pulling: the in-process transport (SSE, WebSocket) does when its
 * caller aborts, which leaves this wrapper suspended at a yield for good, and `done` never came
 * (SSE streams whose session ended were counted as active forever). With the call's `signal`, the
 * call's abort ends it too; after a normal end the abort that follows it changes nothing.
 */
export function onStreamEnd<T>(source: AsyncIterable<T>, done: (err: unknown) => void, signal?: AbortSignal): AsyncIterable<T> {
  let ended = false;
  const end = (err: unknown) => {
    if (ended) return;
    ended = true;
    done(err);
  };
  signal?.addEventListener("abort", () => end(signal.reason), { once: true });
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

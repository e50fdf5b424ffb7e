/** The first line of an error's message: native errors append stack-like detail operators need not see. */
export function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0] ?? "";
}

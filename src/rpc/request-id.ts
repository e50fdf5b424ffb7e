import { randomBytes } from "node:crypto";

/** The header that carries a call's request id, both ways. */
export const REQUEST_ID_HEADER = "x-request-id";

/** An id a client or proxy sent may be reused for correlation, if it cannot smuggle anything into a log. */
const CLIENT_REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;

/** The client's `x-request-id` when it is a plain token, else a new random one. */
export function requestIdFrom(sent: string | string[] | null | undefined): string {
  const value = Array.isArray(sent) ? sent[0] : sent;
  return typeof value === "string" && CLIENT_REQUEST_ID.test(value) ? value : randomBytes(8).toString("hex");
}

// Typed errors of the client: every rejected promise and every `error` event carries a
// VRouterError, whether the router refused a request (its `error.code`, PROTOCOL.md §8) or the
// client gave up on it (timeout, connection lost, client closed...).

/** Router codes that PROTOCOL.md §8 marks retryable: the same request may succeed later. */
const RETRYABLE_ROUTER_CODES = new Set([
  'no_video_server',
  'unavailable',
  'shutting_down',
  'rate_limited',
  'internal',
]);

/** Codes the client itself produces, with whether trying the same call again can help. */
const CLIENT_CODES = {
  timeout: true, // no answer within requestTimeoutMs (the connection may be dead: it is replaced)
  connection_lost: true, // the connection dropped before the answer, and the request is not retried
  cancelled: false, // superseded by a later call (join() by leave())
  client_closed: false, // close() was called, or the client stopped for good
  not_connected: false, // connect() was never called
  session_replaced: false, // close 4000: another session of this user took over
  auth_failed: false, // close 4001 without a preceding error frame
  protocol_error: false, // the router sent something this client cannot make sense of
  token_error: true, // the token function threw or returned no string (tried again on the next attempt)
  not_joined: false, // report() without an assignment to report about
  invalid_message: false, // a user id given to lookup/watch/unwatch breaks the id rules (§4)
};

/** Codes after which the router closes with 4001 (the hello was refused). */
export const AUTH_CODES = new Set([
  'auth_not_configured',
  'token_malformed',
  'token_bad_signature',
  'token_expired',
  'token_not_yet_valid',
  'token_invalid_claims',
]);

export class VRouterError extends Error {
  /**
   * @param {string} code router error code (PROTOCOL.md §8) or one of the client's own codes
   * @param {string} message human-readable; never parse it
   * @param {{request?: string, closeCode?: number, cause?: unknown, fromRouter?: boolean}} [extra]
   */
  constructor(code, message, extra = {}) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = 'VRouterError';
    this.code = code;
    this.fromRouter = Boolean(extra.fromRouter);
    // Unknown router codes are not retryable (PROTOCOL.md §8: "Treat an unknown code as
    // non-retryable").
    this.retryable = this.fromRouter
      ? RETRYABLE_ROUTER_CODES.has(code)
      : Boolean(CLIENT_CODES[code]);
    if (extra.request !== undefined) this.request = extra.request;
    if (extra.closeCode !== undefined) this.closeCode = extra.closeCode;
  }

  /** The error a router `error` frame stands for. */
  static fromFrame(frame, request) {
    const code = typeof frame.code === 'string' ? frame.code : 'internal';
    const message = typeof frame.message === 'string' ? frame.message : code;
    return new VRouterError(code, message, { request, fromRouter: true });
  }
}

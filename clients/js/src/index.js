// @vrouter/client: a client for vrouter.v1 (proto/PROTOCOL.md). Browser and Node 20+ (pass the
// `ws` package's WebSocket in Node); no runtime dependencies.
export { VRouterClient } from './client.js';
export { MediaWatchdog } from './media_watchdog.js';
export { VRouterError } from './errors.js';
export { SUBPROTOCOL } from './connection.js';
export { fullJitterDelay } from './util.js';

// Type declarations of @vrouter/client (hand-written; keep in step with src/*.js).

/** The subprotocol offered on every connection: "vrouter.v1". */
export declare const SUBPROTOCOL: 'vrouter.v1';

/** A video server as the router names it (PROTOCOL.md §6). */
export interface Server {
  id: string;
  /** Where to connect the media. "" (with region "") when the server left the fleet. */
  url: string;
  region: string;
}

/** Where a user is: `server` null (and `epoch` 0) when the user has no assignment. */
export interface Location {
  user: string;
  server: Server | null;
  epoch: number;
}

/** This client's own assignment: the video server to send media through. */
export interface Assignment {
  server: Server;
  epoch: number;
}

export interface Limits {
  maxMessageBytes: number;
  maxBatch: number;
  maxWatches: number;
}

/** What the replica said in `welcome`. */
export interface SessionInfo {
  replica: string;
  session: string;
  user: string;
  space: string;
  limits: Limits;
}

export type ClientState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';

export type ReportReason = 'no_media' | 'ice_failed' | 'dtls_failed' | 'connect_failed' | 'other';

/** The parts of the WebSocket API the client uses (browsers' WebSocket and the `ws` package fit). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: string, listener: (event: any) => void): void;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

export interface BackoffOptions {
  /** First reconnect delay ceiling, ms (default 250). */
  baseMs?: number;
  /** Largest delay ceiling, ms (default 10000). */
  maxMs?: number;
  /** A connection up this long after its welcome resets the backoff, ms (default 2000). */
  resetAfterMs?: number;
}

export interface VRouterClientOptions {
  /** Replica endpoints, e.g. ["wss://r1.example/v1/client", "wss://r2.example/v1/client"]. */
  urls: string[];
  /** The HS256 JWT for `hello`, or a function returning a fresh one (called for every connection). */
  token: string | (() => string | Promise<string>);
  /** WebSocket implementation (default globalThis.WebSocket; in Node 20 pass `ws`'s WebSocket). */
  WebSocket?: WebSocketConstructor;
  /** Deadline of every request, ms (default 10000). */
  requestTimeoutMs?: number;
  /** Deadline from opening a socket to `welcome`, ms (default 10000). */
  connectTimeoutMs?: number;
  backoff?: BackoffOptions;
  /** Window in which lookups are merged into one `lookup` frame, ms (default 2). */
  lookupBatchMs?: number;
  /** Requests sent and not answered yet on one connection (default 32; the router closes at 64 waiting). */
  maxInFlight?: number;
  /** After this long without a frame from the router, probe the connection with an empty lookup (default 30000; 0: off). */
  heartbeatMs?: number;
  /** Random source in [0, 1) for replica choice and jitter (default Math.random). */
  random?: () => number;
}

export type VRouterErrorCode =
  // router codes (PROTOCOL.md §8)
  | 'invalid_json' | 'invalid_message' | 'unknown_type' | 'not_authenticated' | 'already_authenticated'
  | 'auth_not_configured' | 'token_malformed' | 'token_bad_signature' | 'token_expired'
  | 'token_not_yet_valid' | 'token_invalid_claims' | 'not_joined' | 'no_video_server'
  | 'batch_too_large' | 'too_many_watches' | 'unknown_server' | 'unavailable' | 'shutting_down'
  | 'forbidden' | 'rate_limited' | 'internal'
  // the client's own
  | 'timeout' | 'connection_lost' | 'cancelled' | 'client_closed' | 'not_connected'
  | 'session_replaced' | 'auth_failed' | 'protocol_error' | 'token_error'
  | (string & {});

export declare class VRouterError extends Error {
  constructor(code: string, message: string, extra?: { request?: string; closeCode?: number; cause?: unknown; fromRouter?: boolean });
  readonly name: 'VRouterError';
  readonly code: VRouterErrorCode;
  /** Whether the same request may succeed later, unchanged. */
  readonly retryable: boolean;
  /** True when the router sent this code in an `error` frame. */
  readonly fromRouter: boolean;
  /** The request type that failed, when there was one. */
  readonly request?: string;
  /** The WebSocket close code that ended the client (4000, 4001). */
  readonly closeCode?: number;
}

export interface StateEvent {
  state: ClientState;
  previous: ClientState;
  /** The replica concerned: the one just opened, or the one just lost. */
  url?: string;
  /** For 'open': what the replica said in `welcome`. */
  replica?: string;
  session?: string;
  user?: string;
  space?: string;
  limits?: Limits;
  /** For 'connecting'/'reconnecting'/'closed': the close code, reason and error of the lost connection. */
  code?: number;
  reason?: string;
  error?: unknown;
  /** For 'connecting'/'reconnecting': delay before the next attempt. */
  delayMs?: number;
}

export interface AssignedEvent extends Assignment {
  /** True iff a `resume` kept the server it named. */
  resumed: boolean;
  /** The assignment the client had before (null on the first join). */
  previous: Assignment | null;
  /** The media must move to `server.url`. */
  serverChanged: boolean;
}

export interface MovedEvent {
  user: string;
  server: Server;
  epoch: number;
  /** The previous server's id, null when the user arrived. */
  from: string | null;
  /** Learned from a new watch_result after a reconnect, not from a push. */
  resync?: true;
}

export interface LeftEvent {
  user: string;
  /** Epoch of the assignment that ended. */
  epoch: number;
  resync?: true;
}

export interface MigrateEvent extends Assignment {
  /** "drain" (the old server still works for a while), "ejected", "gone"; treat unknown ones like "ejected". */
  reason: string;
  previous: Assignment | null;
}

export interface GoawayEvent {
  url: string;
  reason: string;
  reconnectAfterMs: number;
}

// ---- media watchdog (src/media_watchdog.js) ----------------------------------------------------

/** What the watchdog reads from getStats(): RTCStatsReport and Map fit. */
export interface StatsReportLike {
  forEach(callback: (stat: any, id: string) => void): void;
}

/** The parts of RTCPeerConnection the watchdog uses; a browser's RTCPeerConnection fits. */
export interface PeerConnectionLike {
  getStats(): Promise<StatsReportLike>;
  readonly connectionState?: string;
  readonly iceConnectionState?: string;
  readonly signalingState?: string;
  addEventListener?(type: string, listener: (event: any) => void): void;
  removeEventListener?(type: string, listener: (event: any) => void): void;
}

/** The reasons the watchdog detects (the other report reasons are the application's to send). */
export type MediaFailureReason = 'no_media' | 'ice_failed' | 'dtls_failed';

export interface MediaWatchdogOptions {
  /**
   * The video server the media goes through: an id, or a function returning the current one
   * (a subscription follows its user when they move). Default with watchMedia: this client's own
   * assignment's server. No report while it is unknown (null, undefined or "").
   */
  server?: string | (() => string | null | undefined);
  /** getStats() period, ms (default 1000). */
  intervalMs?: number;
  /** An inbound stream frozen this long while the server's sender reports count packets sent: no_media, ms (default 3000). */
  noMediaAfterMs?: number;
  /** After a no_media, the stream must flow this long before `recovered` and another no_media, ms (default 2000). */
  recoverAfterMs?: number;
  /** At most one report per (server, reason) per this interval, across all watchdogs of a client, ms (default 10000). */
  minReportIntervalMs?: number;
  /** At most this many reports per server from one watchdog (default 6). */
  maxReportsPerServer?: number;
  /** A name for this connection, copied into its events (e.g. "publish", "subscribe:bob"). */
  connection?: string;
  /** Clock, ms (default Date.now); for tests. */
  now?: () => number;
  /** Timer functions (default the global ones); for tests. */
  setInterval?: (callback: () => void, ms: number) => unknown;
  clearInterval?: (handle: any) => void;
}

/** A MediaWatchdog without a client sends its reports through `report`. */
export interface StandaloneMediaWatchdogOptions extends MediaWatchdogOptions {
  report(reason: MediaFailureReason, options: { server: string; detail: string }): unknown;
}

/** One detection, reported or not. */
export interface MediaEvent {
  /** The video server blamed; null when it was unknown (nothing reported). */
  server: string | null;
  reason: MediaFailureReason;
  /** True when the router acknowledged the report. */
  reported: boolean;
  /** What was seen, as sent in the report (at most 256 bytes). */
  detail: string;
  /** The watchdog's `connection` option, when given. */
  connection?: string;
  /** Not sent: no server known, this watchdog's maxReportsPerServer reached, or within minReportIntervalMs of the last report of this (server, reason). */
  skipped?: 'no_server' | 'max_reports' | 'interval';
  /** Sent but failed: the report's error (a VRouterError with the client, e.g. `forbidden` for a server that is neither this user's nor a watched user's). */
  error?: unknown;
}

/** The stream of a no_media flows again (for recoverAfterMs): the next freeze can be reported. */
export interface RecoveredEvent {
  server: string | null;
  reason: 'no_media';
  detail: string;
  connection?: string;
}

export interface MediaWatchdogEvents {
  media: MediaEvent;
  recovered: RecoveredEvent;
  /** stop() was called, the connection closed, or the client closed. */
  stopped: Record<string, never>;
}

/** A running watchdog (the handle watchMedia returns). */
export declare class MediaWatchdog {
  /** Starts watching at once; reports go through `options.report`. */
  constructor(pc: PeerConnectionLike, options: StandaloneMediaWatchdogOptions);
  readonly peerConnection: PeerConnectionLike;
  /** False once stopped. */
  readonly active: boolean;
  /** Stops polling and listening (idempotent). */
  stop(): void;
  on<K extends keyof MediaWatchdogEvents>(type: K, listener: (event: MediaWatchdogEvents[K]) => void): () => void;
  off<K extends keyof MediaWatchdogEvents>(type: K, listener: (event: MediaWatchdogEvents[K]) => void): void;
  once<K extends keyof MediaWatchdogEvents>(type: K, listener: (event: MediaWatchdogEvents[K]) => void): () => void;
}

export interface VRouterClientEvents {
  state: StateEvent;
  assigned: AssignedEvent;
  moved: MovedEvent;
  left: LeftEvent;
  migrate: MigrateEvent;
  goaway: GoawayEvent;
  error: VRouterError;
  /** A media watchdog (watchMedia) detected a failure. */
  media: MediaEvent;
  /** A media watchdog's stream flows again after a no_media. */
  recovered: RecoveredEvent;
}

export declare class VRouterClient {
  constructor(options: VRouterClientOptions);

  readonly state: ClientState;
  readonly assignment: Assignment | null;
  readonly session: SessionInfo | null;
  /** URL of the replica of the current connection, or null. */
  readonly url: string | null;
  readonly watching: string[];

  /** Last known location of a watched user. */
  location(user: string): Location | undefined;

  on<K extends keyof VRouterClientEvents>(type: K, listener: (event: VRouterClientEvents[K]) => void): () => void;
  off<K extends keyof VRouterClientEvents>(type: K, listener: (event: VRouterClientEvents[K]) => void): void;
  once<K extends keyof VRouterClientEvents>(type: K, listener: (event: VRouterClientEvents[K]) => void): () => void;

  connect(): Promise<SessionInfo>;
  close(): Promise<void>;

  join(): Promise<AssignedEvent>;
  leave(): Promise<void>;
  lookup(users: readonly string[]): Promise<Map<string, Location>>;
  watch(users: readonly string[]): Promise<Map<string, Location>>;
  unwatch(users: readonly string[]): Promise<void>;
  report(reason: ReportReason, options?: { server?: string; detail?: string }): Promise<void>;
  /**
   * Watches a peer connection's stats and reports no_media, ice_failed and dtls_failed by itself
   * (`media` and `recovered` events). Ends with stop(), the connection's close, or the client's.
   */
  watchMedia(pc: PeerConnectionLike, options?: MediaWatchdogOptions): MediaWatchdog;
}

/** Full-jitter exponential backoff: uniform in [0, min(maxMs, baseMs * 2^attempt)). */
export declare function fullJitterDelay(
  attempt: number,
  backoff: { baseMs: number; maxMs: number },
  random?: () => number,
): number;

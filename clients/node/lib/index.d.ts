// Types of the wxpushd client (lib/index.js).

export declare const DEFAULT_SOCKET: string;
export declare const MAX_RESPONSE: number;

/** A failed request: the daemon's error map, or the client's connect, protocol or timeout. */
export declare class WxpushError extends Error {
  code: string;
  retryable: boolean;
  field: string | null;
  errcode: number | null;
  errmsg: string | null;
  /** Seconds, as the daemon's retry_after; null when not known. */
  retryAfter: number | null;
  detail: string;
}

export interface ClientOptions {
  socket?: string;
  /** Milliseconds to wait for each answer (35000). */
  timeout?: number;
  retries?: number;
  /** Milliseconds (200, doubled up to maxBackoff 5000). */
  backoff?: number;
  maxBackoff?: number;
  /** Seconds: a longer retry_after is not waited for (10). */
  maxRetryAfter?: number;
  onNotification?: (method: string, params: unknown) => void;
}

export interface RequestOptions {
  timeout?: number;
  retries?: number;
}

export interface SendOptions extends RequestOptions {
  idempotencyKey?: string;
}

export interface EnqueueOptions extends SendOptions {
  /** Unix seconds after which the outbox gives the message up. */
  notAfter?: number;
  watch?: boolean;
}

export interface CallOptions extends RequestOptions {
  method?: 'GET' | 'POST';
  query?: Record<string, string>;
  body?: Record<string, unknown> | string;
}

export type Message = Record<string, unknown>;
export type Result = Record<string, any>;

export declare class Client {
  constructor(opts?: ClientOptions);
  request(method: string, params?: Record<string, unknown> | null, opts?: RequestOptions): Promise<Result>;
  ping(opts?: RequestOptions): Promise<{ version: string; protocol: number }>;
  status(appid?: string, opts?: RequestOptions): Promise<Result>;
  stats(opts?: RequestOptions): Promise<Result>;
  send(message: Message, opts?: SendOptions): Promise<{ errcode: number; errmsg: string; attempts: number }>;
  enqueue(message: Message, opts?: EnqueueOptions): Promise<unknown>;
  enqueueBatch(messages: Message[], opts?: RequestOptions): Promise<unknown[]>;
  delivery(id: unknown, opts?: RequestOptions): Promise<Result>;
  call(appid: string, path: string, opts?: CallOptions): Promise<Result>;
  close(): void;
}

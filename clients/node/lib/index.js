'use strict';
// Client for wxpushd: send WeChat messages through the daemon that holds the
// tokens. MessagePack-RPC over the daemon's Unix socket (docs/protocol.md of
// wxpushd). One Client holds one connection and pipelines every request on it.

const net = require('node:net');
const crypto = require('node:crypto');
const { Encoder, Decoder } = require('@msgpack/msgpack');

const DEFAULT_SOCKET = '/run/wxpushd/wxpushd.sock';
const MAX_RESPONSE = 16 << 20; // bytes; a larger answer is a protocol error
// Methods that change nothing: a lost answer may be asked for again.
const SAFE = new Set(['ping', 'status', 'stats', 'delivery']);

// A failed request: the daemon's error map, or one the client made up
// (connect, protocol, or timeout: its own time limit).
class WxpushError extends Error {
  constructor(code, message, fields = {}) {
    super(`${code}: ${message}`);
    this.name = 'WxpushError';
    this.code = code;
    this.retryable = fields.retryable === true;
    this.field = fields.field ?? null;
    this.errcode = fields.errcode ?? null;
    this.errmsg = fields.errmsg ?? null;
    this.retryAfter = Number.isInteger(fields.retry_after) ? fields.retry_after : null;
    this.detail = message;
  }

  // The error of a response's error map (unknown keys ignored).
  static fromMap(m) {
    if (m === null || typeof m !== 'object' || typeof m.code !== 'string') {
      return new WxpushError('protocol', 'the daemon sent an error without a code');
    }
    return new WxpushError(m.code, String(m.message ?? ''), m);
  }
}

// One socket, its decoder and the requests waiting on it.
class Connection {
  constructor(path, onNotification) {
    this.pending = new Map();
    this.msgid = 0;
    this.closed = null;
    this.onNotification = onNotification;
    this.encoder = new Encoder();
    this.sock = net.createConnection(path);
    this.ready = new Promise((resolve) => {
      this.sock.once('connect', () => {
        if (this.pending.size === 0) this.sock.unref(); // idle: let the process exit
        resolve(null);
      });
      this.sock.once('error', (e) => resolve(new WxpushError('connect',
        `cannot connect to ${path}: ${e.code || e.message}`, { retryable: true })));
    });
    this.sock.on('error', () => {}); // the reader below reports it
    this.read();
  }

  // Decode the answers as they come and hand each to its waiter.
  async read() {
    let since = 0;
    const sock = this.sock;
    async function* chunks() {
      for await (const chunk of sock) {
        since += chunk.length;
        if (since > MAX_RESPONSE) throw new WxpushError('protocol', `an answer over ${MAX_RESPONSE} bytes`);
        yield chunk;
      }
    }
    const decoder = new Decoder({ maxStrLength: MAX_RESPONSE, maxBinLength: MAX_RESPONSE,
      maxArrayLength: 1 << 20, maxMapLength: 1 << 20, maxExtLength: MAX_RESPONSE });
    let err = new WxpushError('connect', 'the daemon closed the connection', { retryable: true });
    try {
      for await (const msg of decoder.decodeStream(chunks())) {
        since = 0;
        const bad = this.dispatch(msg);
        if (bad) { err = bad; break; }
      }
    } catch (e) {
      if (e instanceof WxpushError) err = e;
      else if (e && e.code && typeof e.code === 'string' && e.syscall) {
        err = new WxpushError('connect', `connection lost: ${e.code}`, { retryable: true });
      } else err = new WxpushError('protocol', `not MessagePack: ${e.message}`);
    }
    this.fail(err);
  }

  // One message from the daemon; an error if it breaks the protocol.
  dispatch(msg) {
    if (Array.isArray(msg) && msg.length === 3 && msg[0] === 2 && typeof msg[1] === 'string') {
      if (this.onNotification) {
        try { this.onNotification(msg[1], msg[2]); } catch (_) { /* the caller's bug */ }
      }
      return null;
    }
    if (!Array.isArray(msg) || msg.length !== 4 || msg[0] !== 1 || !Number.isInteger(msg[1]) ||
        (msg[2] === null) === (msg[3] === null) ||
        (msg[3] !== null && (typeof msg[3] !== 'object' || Array.isArray(msg[3])))) {
      return new WxpushError('protocol', 'the daemon sent something that is not a response');
    }
    const w = this.pending.get(msg[1]);
    if (!w) return null; // an answer we gave up waiting for
    this.forget(msg[1], w);
    if (msg[2] !== null) w.reject(WxpushError.fromMap(msg[2]));
    else w.resolve(msg[3]);
    return null;
  }

  forget(msgid, w) {
    clearTimeout(w.timer);
    this.pending.delete(msgid);
    if (this.pending.size === 0) this.sock.unref();
  }

  // End the connection: every waiting request fails with err.
  fail(err) {
    if (!this.closed) this.closed = err;
    this.sock.destroy();
    for (const [msgid, w] of this.pending) {
      this.forget(msgid, w);
      // Written, then the connection died: only repeatable when harmless.
      w.reject(err.code !== 'connect' ? err : new WxpushError('connect', err.detail, {
        retryable: err.retryable && (SAFE.has(w.method) || w.keyed) }));
    }
  }

  // Send one request: a promise of its result map.
  async request(method, params, timeout) {
    const cerr = await this.ready;
    if (cerr) { this.fail(cerr); throw cerr; }
    if (this.closed) {
      const e = new WxpushError('connect', this.closed.detail, { retryable: true });
      e.unsent = true;
      throw e;
    }
    do { this.msgid = (this.msgid + 1) >>> 0; } while (this.pending.has(this.msgid));
    const msgid = this.msgid;
    const frame = this.encoder.encode([0, msgid, method, params == null ? [] : [params]]);
    return new Promise((resolve, reject) => {
      const w = { resolve, reject, method, keyed: params != null && 'idempotency_key' in params };
      w.timer = setTimeout(() => {
        this.forget(msgid, w);
        reject(new WxpushError('timeout',
          `no answer within ${timeout} ms; the request may still be carried out`));
      }, timeout);
      this.pending.set(msgid, w);
      this.sock.ref();
      this.sock.write(frame);
    });
  }

  close() {
    this.fail(new WxpushError('connect', 'the client was closed'));
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A wxpushd client: one pipelined connection, opened on first use and opened
// again after it is lost. Options (times in milliseconds, retryAfter in the
// daemon's seconds): socket, timeout, retries, backoff, maxBackoff,
// maxRetryAfter, onNotification(method, params).
class Client {
  constructor(opts = {}) {
    this.socket = opts.socket || process.env.WXPUSH_SOCKET || DEFAULT_SOCKET;
    this.timeout = opts.timeout ?? 35000;
    this.retries = opts.retries ?? 0;
    this.backoff = opts.backoff ?? 200;
    this.maxBackoff = opts.maxBackoff ?? 5000;
    this.maxRetryAfter = opts.maxRetryAfter ?? 10;
    this.onNotification = opts.onNotification ?? null;
    this.conn = null;
  }

  connection() {
    if (!this.conn || this.conn.closed) this.conn = new Connection(this.socket, this.onNotification);
    return this.conn;
  }

  // Any method: a promise of its result map; rejects with a WxpushError.
  async request(method, params = null, opts = {}) {
    const retries = opts.retries ?? this.retries;
    const timeout = opts.timeout ?? this.timeout;
    let delay = this.backoff;
    let fresh = false;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.connection().request(method, params, timeout);
      } catch (e) {
        if (e.unsent && !fresh) {
          // The kept connection died while idle (a daemon restart): one more
          // try on a new one, whatever the retries.
          fresh = true;
          attempt--;
          continue;
        }
        if (!(e instanceof WxpushError) || !e.retryable || attempt >= retries) throw e;
        if (e.retryAfter !== null && e.retryAfter > this.maxRetryAfter) throw e;
        const wait = e.retryAfter ? e.retryAfter * 1000 : delay / 2 + Math.random() * delay / 2;
        delay = Math.min(delay * 2, this.maxBackoff);
        await sleep(wait);
      }
    }
  }

  keyed(message, opts) {
    const p = { ...message };
    if (opts.idempotencyKey != null) p.idempotency_key = opts.idempotencyKey;
    else if (!('idempotency_key' in p) && (opts.retries ?? this.retries) > 0) {
      p.idempotency_key = 'wxpush-js-' + crypto.randomUUID();
    }
    return p;
  }

  ping(opts = {}) { return this.request('ping', null, opts); }

  status(appid, opts = {}) { return this.request('status', appid ? { appid } : {}, opts); }

  stats(opts = {}) { return this.request('stats', null, opts); }

  // Send one message now: {errcode, errmsg, attempts}.
  send(message, opts = {}) { return this.request('send', this.keyed(message, opts), opts); }

  // Queue one message in the daemon's outbox: its id once it is on disk.
  async enqueue(message, opts = {}) {
    const p = this.keyed(message, opts);
    if (opts.notAfter != null) p.not_after = Math.floor(opts.notAfter);
    if (opts.watch) p.watch = true;
    return (await this.request('enqueue', p, opts)).id;
  }

  // Queue up to 1000 messages at once (all or none): their ids.
  async enqueueBatch(messages, opts = {}) {
    const p = { messages: messages.map((m) => this.keyed(m, { retries: opts.retries })) };
    return (await this.request('enqueue', p, opts)).ids;
  }

  // A queued message's {id, state, attempts, created_at, updated_at, ...}.
  delivery(id, opts = {}) { return this.request('delivery', { id }, opts); }

  // Any allowed WeChat API with the appid's token: WeChat's answer.
  call(appid, path, opts = {}) {
    const p = { appid, path, method: opts.method || 'GET' };
    if (opts.query != null) p.query = opts.query;
    if (opts.body != null) p.body = opts.body;
    return this.request('call', p, opts);
  }

  // Close the connection (a later request opens a new one).
  close() {
    if (this.conn) this.conn.close();
    this.conn = null;
  }
}

module.exports = { Client, WxpushError, DEFAULT_SOCKET, MAX_RESPONSE };

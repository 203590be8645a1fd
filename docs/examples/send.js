#!/usr/bin/env node
/*
 * Send one subscription message through wxpushd, from Node.js.
 *
 * A client written from docs/protocol.md with @msgpack/msgpack
 * (npm install @msgpack/msgpack). It sends one message with an
 * idempotency_key, retries what the daemon says is retryable (honouring
 * retry_after, else backing off exponentially with jitter), and reports
 * anything final.
 *
 *   node send.js [--socket PATH] --appid A --touser OPENID --template-id T \
 *       --scene S --title TEXT --content TEXT [--max-attempts N] [--max-wait S]
 *
 * Exit status: 0 sent; 1 refused, or still failing after the retries;
 * 2 usage; 3 wxpushd cannot be reached.
 */
'use strict';

const crypto = require('node:crypto');
const net = require('node:net');
const { parseArgs } = require('node:util');
const { encode, decodeMultiStream } = require('@msgpack/msgpack');

const DEFAULT_SOCKET = '/run/wxpushd/wxpushd.sock';

class Unreachable extends Error {}

/* One connection to wxpushd; answers are matched to requests by msgid. */
class Client {
  static connect(path) {
    return new Promise((resolve, reject) => {
      const sock = net.createConnection(path);
      sock.once('error', (e) =>
        reject(new Unreachable(`cannot connect to ${path}: ${e.code || e.message}`)));
      sock.once('connect', () => {
        sock.removeAllListeners('error');
        sock.on('error', () => {}); // the reader reports it
        resolve(new Client(sock));
      });
    });
  }

  constructor(sock) {
    this.sock = sock;
    this.msgid = 0;
    this.pending = new Map();
    this.closed = null;
    this.read();
  }

  /* Read answers as they come, in any order, until the connection ends. */
  async read() {
    let why = 'wxpushd closed the connection';
    try {
      // Bound what we accept, as the protocol advises.
      const opts = { maxStrLength: 1 << 20, maxMapLength: 1 << 16, maxArrayLength: 1 << 16 };
      for await (const msg of decodeMultiStream(this.sock, opts)) {
        if (Array.isArray(msg) && msg.length === 4 && msg[0] === 1 &&
            this.pending.has(msg[1])) {
          const p = this.pending.get(msg[1]);
          this.pending.delete(msg[1]);
          p.resolve([msg[2], msg[3]]);
        }
        // An answer to a msgid we gave up on: skip it.
      }
    } catch (e) {
      why = `connection to wxpushd lost: ${e.message}`;
    }
    this.closed = why;
    for (const p of this.pending.values()) p.reject(new Unreachable(why));
    this.pending.clear();
  }

  /* [error, result] of one request: exactly one of them is null. */
  call(method, params, timeoutMs = 60000) {
    if (this.closed) return Promise.reject(new Unreachable(this.closed));
    this.msgid = (this.msgid + 1) >>> 0;
    const msgid = this.msgid;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(msgid);
        reject(new Unreachable('no answer from wxpushd in time'));
      }, timeoutMs);
      this.pending.set(msgid, {
        resolve: (v) => { clearTimeout(timer); resolve(v); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      this.sock.write(encode([0, msgid, method, params ? [params] : []]));
    });
  }

  close() {
    this.sock.destroy();
  }
}

/* One line for a person from an error map (never parse `message`). */
function describe(err) {
  let line = `${err.code || 'error'}: ${err.message || ''}`;
  if (err.field !== undefined) line += ` (field ${err.field})`;
  if (err.errcode !== undefined) line += ` (WeChat errcode ${err.errcode}: ${err.errmsg || ''})`;
  return line;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* Send params; resolves to the exit status. */
async function send(path, params, maxAttempts, maxWait) {
  // The same key on every attempt: a repeat of a message that did go out is
  // answered from the daemon's memory instead of being delivered twice.
  params = { ...params, idempotency_key: crypto.randomBytes(16).toString('hex') };
  let client = null;
  let err = null;
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    let res = null;
    try {
      if (client === null) client = await Client.connect(path);
      [err, res] = await client.call('send', params);
    } catch (e) {
      if (!(e instanceof Unreachable)) throw e;
      if (client !== null) client.close();
      client = null;
      err = { code: 'connect', message: e.message, retryable: true };
    }
    if (err === null) {
      console.log(`sent (daemon attempts: ${res.attempts})`);
      client.close();
      return 0;
    }
    if (!err.retryable || err.code === 'timeout') {
      // Final; and after `timeout` the message may have gone out.
      console.error(`wxpushd: ${describe(err)}`);
      if (client !== null) client.close();
      return err.code === 'connect' ? 3 : 1;
    }
    if (attempt === maxAttempts) break;
    const wait = err.retry_after
      ? err.retry_after
      : Math.min(30, 0.5 * 2 ** (attempt - 1)) * (0.8 + 0.4 * Math.random());
    if (wait > maxWait) {
      console.error(`wxpushd: ${describe(err)}; retry after ${Math.round(wait)} s ` +
        'is past --max-wait, giving up');
      if (client !== null) client.close();
      return 1;
    }
    console.error(`wxpushd: ${describe(err)}; retrying in ${wait.toFixed(1)} s`);
    await sleep(wait * 1000);
  }
  console.error(`wxpushd: ${describe(err)}; giving up after ${maxAttempts} attempts`);
  if (client !== null) client.close();
  return err.code === 'connect' ? 3 : 1;
}

function usage(msg) {
  console.error(`send.js: ${msg}`);
  console.error('usage: send.js [--socket PATH] --appid A --touser OPENID --template-id T ' +
    '--scene S --title TEXT --content TEXT [--max-attempts N] [--max-wait SECONDS]');
  process.exit(2);
}

async function main() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        socket: { type: 'string', short: 's' },
        appid: { type: 'string' },
        touser: { type: 'string' },
        'template-id': { type: 'string' },
        scene: { type: 'string' },
        title: { type: 'string' },
        content: { type: 'string' },
        'max-attempts': { type: 'string', default: '5' },
        'max-wait': { type: 'string', default: '60' },
      },
    }));
  } catch (e) {
    usage(e.message);
  }
  for (const k of ['appid', 'touser', 'template-id', 'scene', 'title', 'content']) {
    if (values[k] === undefined) usage(`missing --${k}`);
  }
  const maxAttempts = Number(values['max-attempts']);
  const maxWait = Number(values['max-wait']);
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) usage('--max-attempts must be >= 1');
  if (!(maxWait >= 0)) usage('--max-wait must be a number of seconds');
  const path = values.socket || process.env.WXPUSH_SOCKET || DEFAULT_SOCKET;
  const params = {
    appid: values.appid,
    touser: values.touser,
    template_id: values['template-id'],
    scene: values.scene,
    title: values.title,
    data: { content: { value: values.content } },
  };
  process.exitCode = await send(path, params, maxAttempts, maxWait);
}

main();

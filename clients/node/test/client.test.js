'use strict';
// The Node client against the real wxpushd and wxpush-mock, started by
// tests/clients/harness.py of the wxpushd tree ($WX_SRCDIR).

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const readline = require('node:readline');
const { spawn } = require('node:child_process');
const { Client, WxpushError } = require('..');

const SUBSCRIBE = '/cgi-bin/message/template/subscribe';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let H;

// The harness process: the daemon and the mock, and commands for them.
class Harness {
  async start() {
    const src = process.env.WX_SRCDIR || path.join(__dirname, '..', '..', '..');
    this.proc = spawn(process.env.WX_PYTHON || '/usr/bin/python3',
      [path.join(src, 'tests', 'clients', 'harness.py')],
      { env: { ...process.env, PYTHONPATH: path.join(src, 'tests', 'integration') },
        stdio: ['pipe', 'pipe', 'inherit'] });
    this.lines = readline.createInterface({ input: this.proc.stdout })[Symbol.asyncIterator]();
    this.info = await this.line();
  }

  async line() {
    const { value, done } = await this.lines.next();
    if (done) throw new Error('the harness exited');
    return JSON.parse(value);
  }

  async do(op, args = {}) {
    this.proc.stdin.write(JSON.stringify({ op, ...args }) + '\n');
    const ans = await this.line();
    if (!ans.ok) throw new Error('harness: ' + ans.error);
    return ans;
  }

  async sends() { return (await this.do('sends')).n; }

  close() {
    this.proc.stdin.end();
    return new Promise((r) => this.proc.once('exit', r));
  }
}

const message = (over = {}) => ({
  appid: H.info.appid, touser: 'oUSER_openid_0001', template_id: 'TEMPLATE_id_0001',
  scene: 1000, title: '订阅通知', data: { content: { value: '您好, wxpushd!' } }, ...over,
});

async function rejects(promise, check) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof WxpushError, String(e));
    check(e);
    return true;
  });
}

before(async () => { H = new Harness(); await H.start(); });
after(async () => { await H.close(); });

test('ping', async () => {
  const c = new Client({ socket: H.info.socket });
  const r = await c.ping();
  assert.equal(r.protocol, 1);
  assert.equal(typeof r.version, 'string');
  c.close();
});

test('status', async () => {
  const c = new Client({ socket: H.info.socket });
  assert.ok((await c.status()).credentials.some((x) => x.appid === H.info.appid));
  assert.deepEqual((await c.status(H.info.appid)).credentials.map((x) => x.appid), [H.info.appid]);
  c.close();
});

test('send', async () => {
  const c = new Client({ socket: H.info.socket });
  const n = await H.sends();
  const r = await c.send(message());
  assert.equal(r.errcode, 0);
  assert.equal(r.attempts, 1);
  assert.equal(await H.sends(), n + 1);
  c.close();
});

test('typed errors: invalid_request, unknown_appid, unknown_method, wechat', async () => {
  const c = new Client({ socket: H.info.socket });
  await rejects(c.send(message({ title: 'x'.repeat(16) })), (e) => {
    assert.equal(e.code, 'invalid_request');
    assert.equal(e.field, 'title');
    assert.equal(e.retryable, false);
  });
  await rejects(c.send(message({ appid: 'wxnotconfigured00' })), (e) => assert.equal(e.code, 'unknown_appid'));
  await rejects(c.request('no_such_method'), (e) => assert.equal(e.code, 'unknown_method'));
  await H.do('fault', { path: SUBSCRIBE, count: 1, errcode: 43101 });
  await rejects(c.send(message(), { retries: 3 }), (e) => {
    assert.equal(e.code, 'wechat');
    assert.equal(e.errcode, 43101);
    assert.equal(e.retryable, false);
    assert.equal(typeof e.errmsg, 'string');
  });
  c.close();
});

test('a retry_after over the budget is not waited for', async () => {
  await H.do('fault', { path: SUBSCRIBE, count: 1, errcode: 45011 });
  const n = await H.sends();
  const c = new Client({ socket: H.info.socket, retries: 3, maxRetryAfter: 0 });
  const t0 = Date.now();
  await rejects(c.send(message()), (e) => {
    assert.equal(e.errcode, 45011);
    assert.equal(e.retryable, true);
    assert.ok(e.retryAfter >= 1 && e.retryAfter <= 60, String(e.retryAfter));
  });
  assert.ok(Date.now() - t0 < 5000);
  assert.equal(await H.sends(), n);
  c.close();
});

test('retries of retryable errors', async () => {
  const c = new Client({ socket: H.info.socket });
  await H.do('fault', { path: SUBSCRIBE, count: 4, errcode: -1 });
  await rejects(c.send(message()), (e) => { assert.equal(e.errcode, -1); assert.equal(e.retryable, true); });
  await H.do('fault', { path: SUBSCRIBE, count: 4, errcode: -1 });
  const n = await H.sends();
  assert.equal((await c.send(message(), { retries: 2 })).errcode, 0);
  assert.equal(await H.sends(), n + 1);
  c.close();
});

test('timeout, then the connection is still usable', async () => {
  const c = new Client({ socket: H.info.socket });
  await H.do('fault', { path: SUBSCRIBE, count: 1, delay_ms: 1500 });
  const t0 = Date.now();
  await rejects(c.send(message(), { timeout: 300 }), (e) => assert.equal(e.code, 'timeout'));
  assert.ok(Date.now() - t0 < 1400);
  await sleep(1600); // the late answer arrives and is skipped
  assert.equal((await c.ping()).protocol, 1);
  assert.equal((await c.send(message())).errcode, 0);
  c.close();
});

test('pipelining: answers in any order, many in flight', async () => {
  const c = new Client({ socket: H.info.socket });
  await H.do('fault', { path: SUBSCRIBE, count: 1, delay_ms: 1500 });
  const order = [];
  const slow = c.send(message()).then(() => order.push('send'));
  await sleep(200);
  await c.ping().then(() => order.push('ping'));
  await slow;
  assert.deepEqual(order, ['ping', 'send']);
  const n = await H.sends();
  const rs = await Promise.all(Array.from({ length: 20 }, () => c.send(message())));
  assert.deepEqual(rs.map((r) => r.errcode), Array(20).fill(0));
  assert.equal(await H.sends(), n + 20);
  c.close();
});

test('idempotency keys', async () => {
  const c = new Client({ socket: H.info.socket });
  const key = `js-idem-${Date.now()}`;
  const n = await H.sends();
  const a = await c.send(message(), { idempotencyKey: key });
  const b = await c.send(message(), { idempotencyKey: key });
  assert.deepEqual(a, b);
  assert.equal(await H.sends(), n + 1);
  await rejects(c.send(message({ title: 'another' }), { idempotencyKey: key }), (e) => {
    assert.equal(e.code, 'invalid_request');
    assert.equal(e.field, 'idempotency_key');
  });
  c.close();
});

test('a daemon restart in the middle of use', async () => {
  const c = new Client({ socket: H.info.socket });
  assert.equal((await c.ping()).protocol, 1);
  await H.do('restart');
  assert.equal((await c.ping()).protocol, 1);
  await H.do('stop');
  let pending;
  const r = new Client({ socket: H.info.socket, retries: 20, backoff: 100, maxBackoff: 500 });
  try {
    await rejects(c.ping(), (e) => { assert.equal(e.code, 'connect'); assert.equal(e.retryable, true); });
    pending = r.send(message());
    await sleep(1000);
  } finally {
    await H.do('start');
  }
  assert.equal((await pending).errcode, 0);
  c.close();
  r.close();
});

test('a connection lost during a send: repeatable only under an idempotency key', async () => {
  for (const [key, retryable] of [[undefined, false], [`js-lost-${Date.now()}`, true]]) {
    const c = new Client({ socket: H.info.socket });
    await c.send(message()); // a token at hand: the next send goes out at once
    await H.do('fault', { path: SUBSCRIBE, count: 1, delay_ms: 1500 });
    const n = await H.sends();
    const p = c.send(message(), { idempotencyKey: key }).then(() => null, (e) => e);
    await sleep(500);
    await H.do('kill');
    const e = await p;
    await H.do('start');
    assert.ok(e instanceof WxpushError, String(e));
    assert.equal(e.code, 'connect');
    assert.equal(e.retryable, retryable);
    // ... and it was: WeChat got it after the daemon died.
    for (const end = Date.now() + 10000; (await H.sends()) === n && Date.now() < end;) await sleep(50);
    assert.equal(await H.sends(), n + 1);
    c.close();
  }
});

test('what breaks the protocol ends the connection; the next request opens another', async () => {
  const c = new Client({ socket: H.info.fake });
  for (const method of ['test_garbage', 'test_oversize', 'test_malformed']) {
    await rejects(c.request(method), (e) => assert.equal(e.code, 'protocol', method));
    assert.equal((await c.call(H.info.appid, H.info.call_path)).errcode, 0);
  }
  c.close();
});

test('enqueue params and idempotency keys', async () => {
  // What enqueue writes (the stand-in hands it back): notAfter, watch, the
  // caller's key, and a key of the client's own when it retries.
  const c = new Client({ socket: H.info.fake });
  const r = new Client({ socket: H.info.fake, retries: 2 });
  await c.enqueue(message(), { notAfter: 1900000000, watch: true, idempotencyKey: 'k-1' });
  let p = (await c.request('test_last')).params;
  assert.deepEqual([p.not_after, p.watch, p.idempotency_key, p.title], [1900000000, true, 'k-1', '订阅通知']);
  await c.enqueue(message());
  p = (await c.request('test_last')).params;
  assert.ok(!('idempotency_key' in p) && !('watch' in p));
  await r.enqueue(message());
  const k1 = (await r.request('test_last')).params.idempotency_key;
  await r.enqueue(message());
  const k2 = (await r.request('test_last')).params.idempotency_key;
  assert.ok(k1.startsWith('wxpush-') && k1 !== k2, `${k1} ${k2}`);
  c.close();
  r.close();
});

// enqueue, delivery and call (issues #14, #16): against the daemon once it has
// them, until then against the harness's stand-in of their contract.
test('enqueue and delivery', async () => {
  const c = new Client({ socket: H.info.planned.enqueue });
  const id = await c.enqueue(message(), { notAfter: Date.now() / 1000 + 600 });
  let d;
  for (const end = Date.now() + 20000; Date.now() < end; await sleep(100)) {
    d = await c.delivery(id);
    if (d.state !== 'queued' && d.state !== 'sending') break;
  }
  assert.equal(d.id, id);
  assert.equal(d.state, 'delivered');
  assert.ok(d.attempts >= 1);
  const ids = await c.enqueueBatch([message(), message()]);
  assert.equal(ids.length, 2);
  // Delivered before the test ends: a later test's one-shot fault is its own.
  for (const i of ids) {
    for (const end = Date.now() + 20000; Date.now() < end; await sleep(100)) {
      d = await c.delivery(i);
      if (d.state !== 'queued' && d.state !== 'sending') break;
    }
    assert.equal(d.state, 'delivered');
  }
  await rejects(c.enqueueBatch([message(), message({ title: '' })]), (e) => assert.equal(e.code, 'invalid_request'));
  c.close();
});

test('enqueue with watch', async () => {
  let note;
  const got = new Promise((r) => { note = r; });
  const c = new Client({ socket: H.info.planned.enqueue, onNotification: (m, p) => note([m, p]) });
  const id = await c.enqueue(message(), { watch: true });
  let timer;
  const late = new Promise((r) => { timer = setTimeout(() => r([null, null]), 20000); });
  const [m, p] = await Promise.race([got, late]);
  clearTimeout(timer);
  assert.equal(m, 'delivery');
  assert.equal(p[0].id, id);
  c.close();
});

test('call', async () => {
  const c = new Client({ socket: H.info.planned.call });
  const r = await c.call(H.info.appid, H.info.call_path);
  assert.equal(typeof r, 'object');
  assert.ok(!('access_token' in r));
  await rejects(c.call(H.info.appid, '/cgi-bin/token'), (e) => assert.ok(['forbidden', 'invalid_request'].includes(e.code)));
  c.close();
});

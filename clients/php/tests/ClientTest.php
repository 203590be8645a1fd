<?php

declare(strict_types=1);

namespace Wxpush\Tests;

use PHPUnit\Framework\TestCase;
use Wxpush\Client;
use Wxpush\WxpushException;

/** The PHP client against the real wxpushd and wxpush-mock. */
final class ClientTest extends TestCase
{
    private const SUBSCRIBE = '/cgi-bin/message/template/subscribe';
    private Harness $h;

    protected function setUp(): void
    {
        $this->h = Harness::get();
    }

    private function client(...$args): Client
    {
        return new Client($this->h->info['socket'], 20.0, ...$args);
    }

    private function message(array $over = []): array
    {
        return $over + ['appid' => $this->h->info['appid'], 'touser' => 'oUSER_openid_0001',
            'template_id' => 'TEMPLATE_id_0001', 'scene' => 1000, 'title' => '订阅通知',
            'data' => ['content' => ['value' => '您好, wxpushd!']]];
    }

    private function fault(int $count, array $what): void
    {
        $this->h->do('fault', ['path' => self::SUBSCRIBE, 'count' => $count] + $what);
    }

    private function expect(string $code, callable $f): WxpushException
    {
        try {
            $f();
        } catch (WxpushException $e) {
            $this->assertSame($code, $e->errorCode(), $e->getMessage());
            return $e;
        }
        $this->fail("no $code error");
    }

    public function testPing(): void
    {
        $r = $this->client()->ping();
        $this->assertSame(1, $r['protocol']);
        $this->assertIsString($r['version']);
    }

    public function testStatus(): void
    {
        $c = $this->client();
        $appid = $this->h->info['appid'];
        $this->assertContains($appid, array_column($c->status()['credentials'], 'appid'));
        $this->assertSame([$appid], array_column($c->status($appid)['credentials'], 'appid'));
    }

    public function testSend(): void
    {
        $n = $this->h->sends();
        $r = $this->client()->send($this->message());
        $this->assertSame([0, 1], [$r['errcode'], $r['attempts']]);
        $this->assertSame($n + 1, $this->h->sends());
    }

    public function testTypedErrors(): void
    {
        $c = $this->client();
        $e = $this->expect('invalid_request', fn () => $c->send($this->message(['title' => str_repeat('x', 16)])));
        $this->assertSame('title', $e->field());
        $this->assertFalse($e->isRetryable());
        $this->expect('unknown_appid', fn () => $c->send($this->message(['appid' => 'wxnotconfigured00'])));
        $this->expect('unknown_method', fn () => $c->request('no_such_method'));
        $this->fault(1, ['errcode' => 43101]);
        $e = $this->expect('wechat', fn () => $c->send($this->message(), retries: 3));
        $this->assertSame(43101, $e->errcode());
        $this->assertSame(43101, $e->getCode());
        $this->assertFalse($e->isRetryable());
        $this->assertIsString($e->errmsg());
    }

    public function testRetryAfterOverBudget(): void
    {
        $this->fault(1, ['errcode' => 45011]);
        $n = $this->h->sends();
        $c = $this->client(retries: 3, maxRetryAfter: 0.0);
        $t0 = microtime(true);
        $e = $this->expect('wechat', fn () => $c->send($this->message()));
        $this->assertSame(45011, $e->errcode());
        $this->assertTrue($e->isRetryable());
        $this->assertGreaterThanOrEqual(1, $e->retryAfter());
        $this->assertLessThanOrEqual(60, $e->retryAfter());
        $this->assertLessThan(5, microtime(true) - $t0);
        $this->assertSame($n, $this->h->sends());
    }

    public function testRetries(): void
    {
        $c = $this->client();
        $this->fault(4, ['errcode' => -1]);
        $e = $this->expect('wechat', fn () => $c->send($this->message()));
        $this->assertSame(-1, $e->errcode());
        $this->assertTrue($e->isRetryable());
        $this->fault(4, ['errcode' => -1]);
        $n = $this->h->sends();
        $this->assertSame(0, $c->send($this->message(), retries: 2)['errcode']);
        $this->assertSame($n + 1, $this->h->sends());
    }

    public function testTimeoutThenUsable(): void
    {
        $c = $this->client();
        $this->fault(1, ['delay_ms' => 1500]);
        $t0 = microtime(true);
        $this->expect('timeout', fn () => $c->send($this->message(), timeout: 0.3));
        $this->assertLessThan(1.4, microtime(true) - $t0);
        usleep(1600000);        // the late answer arrives and is skipped
        $this->assertSame(1, $c->ping()['protocol']);
        $this->assertSame(0, $c->send($this->message())['errcode']);
    }

    public function testPipelining(): void
    {
        $c = $this->client();
        $n = $this->h->sends();
        $rs = $c->pipeline(array_fill(0, 20, ['send', $this->message()]));
        $this->assertSame(array_fill(0, 20, 0), array_column($rs, 'errcode'));
        $this->assertSame($n + 20, $this->h->sends());
        // Answers in any order: a ping overtakes a slow send; a failed one is returned, not thrown.
        $this->fault(1, ['delay_ms' => 1000]);
        $t0 = microtime(true);
        $rs = $c->pipeline([['send', $this->message()], ['ping', null], ['send', $this->message(['title' => ''])]]);
        $this->assertSame(0, $rs[0]['errcode']);
        $this->assertSame(1, $rs[1]['protocol']);
        $this->assertInstanceOf(WxpushException::class, $rs[2]);
        $this->assertSame('title', $rs[2]->field());
        $this->assertGreaterThan(0.9, microtime(true) - $t0);
    }

    public function testLongPipeline(): void
    {
        // More than the daemon's 4096 requests in flight and than a socket
        // buffer holds: writing must go on reading answers, or both sides wait.
        $rs = $this->client()->pipeline(array_fill(0, 50000, ['ping', null]));
        $this->assertCount(50000, $rs);
        $this->assertSame([1], array_values(array_unique(array_column($rs, 'protocol'))));
    }

    public function testIdempotencyKey(): void
    {
        $c = $this->client();
        $key = 'php-idem-' . hrtime(true);
        $n = $this->h->sends();
        $a = $c->send($this->message(), $key);
        $b = $c->send($this->message(), $key);
        $this->assertSame($a, $b);
        $this->assertSame($n + 1, $this->h->sends());
        $e = $this->expect('invalid_request', fn () => $c->send($this->message(['title' => 'another']), $key));
        $this->assertSame('idempotency_key', $e->field());
    }

    public function testRestart(): void
    {
        $c = $this->client();
        $this->assertSame(1, $c->ping()['protocol']);
        $this->h->do('restart');
        $this->assertSame(1, $c->ping()['protocol']);
        $this->h->do('stop');
        try {
            $e = $this->expect('connect', fn () => $c->ping());
            $this->assertTrue($e->isRetryable());
        } finally {
            $this->h->do('start');
        }
        // Down while retrying: a child process starts the daemon a second later.
        $this->h->do('stop');
        $r = $this->client(retries: 20, backoff: 0.1, maxBackoff: 0.5);
        $pid = pcntl_fork();
        if ($pid === 0) {
            usleep(1000000);
            $this->h->do('start');
            posix_kill(posix_getpid(), SIGKILL);    // no PHPUnit shutdown in the child
        }
        try {
            $this->assertSame(0, $r->send($this->message())['errcode']);
        } finally {
            pcntl_waitpid($pid, $status);
        }
    }

    public function testConnectionLostDuringSend(): void
    {
        // A send the daemon was carrying out when it died may have been
        // delivered: repeatable only under an idempotency key.
        foreach ([[null, false], ['php-lost-' . hrtime(true), true]] as [$key, $retryable]) {
            $c = $this->client();
            $c->send($this->message());    // a token at hand: the next send goes out at once
            $this->fault(1, ['delay_ms' => 1500]);
            $n = $this->h->sends();
            $pid = pcntl_fork();
            if ($pid === 0) {
                usleep(500000);
                $this->h->do('kill');
                posix_kill(posix_getpid(), SIGKILL);
            }
            try {
                $e = $this->expect('connect', fn () => $c->send($this->message(), $key));
                $this->assertSame($retryable, $e->isRetryable());
            } finally {
                pcntl_waitpid($pid, $status);
                $this->h->do('start');
            }
            // ... and it was: WeChat got it after the daemon died.
            for ($end = microtime(true) + 10; $this->h->sends() === $n && microtime(true) < $end;) {
                usleep(50000);
            }
            $this->assertSame($n + 1, $this->h->sends());
        }
    }

    public function testProtocolErrors(): void
    {
        // What breaks the protocol ends the connection; the next request opens another.
        $c = new Client($this->h->info['fake'], 20.0);
        foreach (['test_garbage', 'test_oversize', 'test_malformed'] as $m) {
            // Not MessagePack is seen at the timeout (php-msgpack cannot tell it from "more to come").
            $this->expect('protocol', fn () => $c->request($m, null, 1.0));
            $this->assertSame(0, $c->call($this->h->info['appid'], $this->h->info['call_path'])['errcode']);
        }
    }

    public function testEnqueueParamsAndIdempotencyKeys(): void
    {
        // What enqueue writes (the stand-in hands it back): notAfter, watch, the
        // caller's key, and a key of the client's own when it retries.
        $c = new Client($this->h->info['fake'], 20.0);
        $r = new Client($this->h->info['fake'], 20.0, retries: 2);
        $c->enqueue($this->message(), notAfter: 1900000000, watch: true, idempotencyKey: 'k-1');
        $p = $c->request('test_last')['params'];
        $this->assertSame([1900000000, true, 'k-1', '订阅通知'],
            [$p['not_after'], $p['watch'], $p['idempotency_key'], $p['title']]);
        $c->enqueue($this->message());
        $p = $c->request('test_last')['params'];
        $this->assertArrayNotHasKey('idempotency_key', $p);
        $this->assertArrayNotHasKey('watch', $p);
        $r->enqueue($this->message());
        $k1 = $r->request('test_last')['params']['idempotency_key'];
        $r->enqueue($this->message());
        $k2 = $r->request('test_last')['params']['idempotency_key'];
        $this->assertStringStartsWith('wxpush-', $k1);
        $this->assertNotSame($k1, $k2);
    }

    // enqueue, delivery and call (issues #14, #16): against the daemon once it
    // has them, until then against the harness's stand-in of their contract.

    private function planned(string $method, ...$args): Client
    {
        return new Client($this->h->info['planned'][$method], 20.0, ...$args);
    }

    public function testEnqueueAndDelivery(): void
    {
        $c = $this->planned('enqueue');
        $id = $c->enqueue($this->message(), notAfter: time() + 600);
        for ($end = microtime(true) + 20; microtime(true) < $end; usleep(100000)) {
            $d = $c->delivery($id);
            if ($d['state'] !== 'queued' && $d['state'] !== 'sending') {
                break;
            }
        }
        $this->assertSame($id, $d['id']);
        $this->assertSame('delivered', $d['state']);
        $this->assertGreaterThanOrEqual(1, $d['attempts']);
        $ids = $c->enqueueBatch([$this->message(), $this->message()]);
        $this->assertCount(2, $ids);
        // Delivered before the test ends: a later test's one-shot fault is its own.
        foreach ($ids as $i) {
            for ($end = microtime(true) + 20; microtime(true) < $end; usleep(100000)) {
                $d = $c->delivery($i);
                if ($d['state'] !== 'queued' && $d['state'] !== 'sending') {
                    break;
                }
            }
            $this->assertSame('delivered', $d['state']);
        }
        $this->expect('invalid_request', fn () => $c->enqueueBatch([$this->message(), $this->message(['title' => ''])]));
    }

    public function testEnqueueWatch(): void
    {
        $seen = [];
        $c = $this->planned('enqueue', onNotification: function ($m, $p) use (&$seen) { $seen[] = [$m, $p]; });
        $id = $c->enqueue($this->message(), watch: true);
        for ($end = microtime(true) + 20; !$seen && microtime(true) < $end;) {
            $c->poll(0.1);
        }
        $this->assertSame('delivery', $seen[0][0] ?? null);
        $this->assertSame($id, $seen[0][1][0]['id']);
    }

    public function testCall(): void
    {
        $c = $this->planned('call');
        $r = $c->call($this->h->info['appid'], $this->h->info['call_path']);
        $this->assertArrayNotHasKey('access_token', $r);
        try {
            $c->call($this->h->info['appid'], '/cgi-bin/token');
            $this->fail('a token path was called');
        } catch (WxpushException $e) {
            $this->assertContains($e->errorCode(), ['forbidden', 'invalid_request']);
        }
    }
}

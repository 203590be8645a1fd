<?php

declare(strict_types=1);

namespace Wxpush\Tests;

/**
 * tests/clients/harness.py of the wxpushd tree ($WX_SRCDIR): the real
 * wxpushd and wxpush-mock, and commands for them.
 */
final class Harness
{
    private static ?Harness $one = null;
    /** @var resource */
    private $proc;
    /** @var array<int, resource> */
    private array $pipes = [];
    public array $info;

    public static function get(): self
    {
        return self::$one ??= new self();
    }

    private function __construct()
    {
        $src = getenv('WX_SRCDIR') ?: dirname(__DIR__, 3);
        $py = getenv('WX_PYTHON') ?: '/usr/bin/python3';
        $env = getenv();
        $env['PYTHONPATH'] = "$src/tests/integration";
        $this->proc = proc_open([$py, "$src/tests/clients/harness.py"],
            [0 => ['pipe', 'r'], 1 => ['pipe', 'w'], 2 => STDERR], $this->pipes, null, $env);
        $line = fgets($this->pipes[1]);
        if ($line === false) {
            throw new \RuntimeException('the harness did not start');
        }
        $this->info = json_decode($line, true, 16, JSON_THROW_ON_ERROR);
        register_shutdown_function(function () {
            fclose($this->pipes[0]);
            stream_get_contents($this->pipes[1]);
            proc_close($this->proc);
        });
    }

    public function do(string $op, array $args = []): array
    {
        fwrite($this->pipes[0], json_encode(['op' => $op] + $args) . "\n");
        $ans = json_decode((string) fgets($this->pipes[1]), true, 16, JSON_THROW_ON_ERROR);
        if (!$ans['ok']) {
            throw new \RuntimeException('harness: ' . $ans['error']);
        }
        return $ans;
    }

    public function sends(): int
    {
        return $this->do('sends')['n'];
    }
}

<?php

// Composer's autoloader when there is one, else the two classes by hand
// (Debian's phpunit runs without composer).
if (is_file(__DIR__ . '/../vendor/autoload.php')) {
    require __DIR__ . '/../vendor/autoload.php';
} else {
    require __DIR__ . '/../src/WxpushException.php';
    require __DIR__ . '/../src/Client.php';
}
require __DIR__ . '/Harness.php';

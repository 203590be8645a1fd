# The PHP client's PHPUnit suite (clients/php), as TAP: Debian's phpunit and
# php-msgpack, no composer install needed (tests/bootstrap.php loads src/).
. "$(dirname "$0")/suite.sh"
suite_need php phpunit
php -r 'exit(extension_loaded("msgpack") && extension_loaded("pcntl") ? 0 : 1);' ||
    { echo "1..0 # SKIP php-msgpack is not installed"; exit 0; }
suite_workdir php
suite_run "php client: phpunit" phpunit --testdox

# Shared by the client suites' TAP wrappers (tests/clients/<language>.sh, run
# by make check): each runs one client's own test runner against the real
# daemon and reports it as one TAP test, with the runner's output as comments.
# WX_SRCDIR and WX_BUILDDIR come from make check (AM_TESTS_ENVIRONMENT).

: "${WX_SRCDIR:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${WX_BUILDDIR:=$WX_SRCDIR}"
export WX_SRCDIR WX_BUILDDIR
WX_PYTHON=${WX_PYTHON:-/usr/bin/python3}
export WX_PYTHON
CLIENTS="$WX_SRCDIR/clients"

# Skip the whole suite (TAP plan 1..0) unless every command given exists.
suite_need() {
	for c in "$@"; do
		if ! command -v "$c" >/dev/null 2>&1; then
			echo "1..0 # SKIP $c is not installed (./bootstrap installs it)"
			exit 0
		fi
	done
}

# Skip the whole suite unless a file (a Debian package's library) exists.
suite_need_file() {
	if [ ! -e "$1" ]; then
		echo "1..0 # SKIP $1 is missing (./bootstrap installs $2)"
		exit 0
	fi
}

# Go to a fresh copy of clients/$1 under the build tree, so that the build
# output (target/, vendor/, caches) never lands in the source tree.
suite_workdir() {
	work="$WX_BUILDDIR/clients-build/$1"
	rm -rf "$work" && mkdir -p "$work" && cp -R "$CLIENTS/$1/." "$work/" && cd "$work" ||
	    { echo "1..1"; echo "not ok 1 - cannot copy clients/$1 to $work"; exit 1; }
}

# Run the command (in the current directory) for at most SUITE_TIMEOUT
# seconds; one TAP line for it.
SUITE_TIMEOUT=${SUITE_TIMEOUT:-300}
suite_run() {
	desc=$1
	shift
	out=$(mktemp)
	start=$(date +%s)
	if timeout -k 10 "$SUITE_TIMEOUT" "$@" >"$out" 2>&1; then res=ok; else res="not ok"; fi
	echo "1..1"
	# As comments, without colour codes, each line ended (Maven's last is not).
	sed 's/\x1b\[[0-9;]*m//g' "$out" | awk '{ print "# " $0 }'
	rm -f "$out"
	echo "$res 1 - $desc ($(($(date +%s) - start)) s)"
}

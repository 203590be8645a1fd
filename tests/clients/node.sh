# The Node client's node --test suite (clients/node), as TAP. Its one
# dependency, @msgpack/msgpack, is pinned by package-lock.json; ./bootstrap
# installs it with npm ci, and so does this when node_modules is missing.
. "$(dirname "$0")/suite.sh"
suite_need node npm
suite_workdir node
if [ ! -d node_modules/@msgpack/msgpack ]; then
	npm ci --no-audit --no-fund >/dev/null 2>&1 ||
	    { echo "1..0 # SKIP npm ci failed (no npm registry?)"; exit 0; }
fi
suite_run "node client: node --test" node --test test/

# The Go client's go test suite (clients/go), as TAP. Its one dependency,
# github.com/vmihailenco/msgpack/v5, comes from Debian's
# golang-github-vmihailenco-msgpack.v5-dev: copied into a vendor directory
# (go test -mod=vendor), so nothing is fetched.
. "$(dirname "$0")/suite.sh"
suite_need go
GOCODE=/usr/share/gocode/src/github.com/vmihailenco
suite_need_file "$GOCODE/msgpack/v5/go.mod" golang-github-vmihailenco-msgpack.v5-dev
suite_workdir go
mkdir -p vendor/github.com/vmihailenco
cp -r "$GOCODE/msgpack" "$GOCODE/tagparser" vendor/github.com/vmihailenco/
find vendor -name '*_test.go' -delete
cat > vendor/modules.txt <<'MOD'
# github.com/vmihailenco/msgpack/v5 v5.3.5
## explicit; go 1.11
github.com/vmihailenco/msgpack/v5
github.com/vmihailenco/msgpack/v5/msgpcode
# github.com/vmihailenco/tagparser/v2 v2.0.0
## explicit; go 1.15
github.com/vmihailenco/tagparser/v2
github.com/vmihailenco/tagparser/v2/internal
github.com/vmihailenco/tagparser/v2/internal/parser
MOD
export GOFLAGS=-mod=vendor GOPROXY=off GO111MODULE=on
export GOCACHE="${GOCACHE:-$WX_BUILDDIR/clients-build/go-cache}" GOPATH="$WX_BUILDDIR/clients-build/gopath"
suite_run "go client: gofmt, go vet, go test" sh -c 'test -z "$(gofmt -l *.go)" && go vet ./... && go test -count=1 -v ./...'

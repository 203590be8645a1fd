#!/bin/sh
# Build every fuzz target (tests/fuzz/fuzz_*.c) for libFuzzer with ASan and
# UBSan, compiling the daemon's sources from src/common and src/wxpushd directly; `make fuzz` calls
# it. See docs/fuzzing.md.
#
# usage: build.sh SRCDIR BUILDDIR SOURCE...
#	SRCDIR is the source tree, BUILDDIR a configured build (for config.h);
#	the targets go to BUILDDIR/fuzz-build. SOURCEs are the daemon's files
#	relative to SRCDIR (headers are skipped).
# Environment: FUZZ_CC (clang), FUZZ_CFLAGS (-g -O1), FUZZ_CPPFLAGS (the
#	install paths), FUZZ_DEP_CFLAGS and FUZZ_DEP_LIBS (the libraries'
#	flags as configure found them with pkg-config; asked of PKG_CONFIG
#	if unset).
set -eu

if [ $# -lt 3 ]; then
	echo "usage: $0 SRCDIR BUILDDIR SOURCE..." >&2
	exit 2
fi
srcdir=$1
builddir=$2
shift 2
out=$builddir/fuzz-build
cc=${FUZZ_CC:-clang}
cflags=${FUZZ_CFLAGS:--g -O1}
pkgconfig=${PKG_CONFIG:-pkg-config}
modules="libevent libevent_openssl libcurl openssl msgpack jansson libconfuse
    sqlite3 expat hiredis"
grep -q '^#define HAVE_SYSTEMD 1' "$builddir/config.h" &&
    modules="$modules libsystemd"
sanitize="address,undefined"

if ! command -v "$cc" >/dev/null 2>&1; then
	echo "$0: $cc not found: libFuzzer needs clang (apt-get install clang)" >&2
	exit 1
fi
dep_cflags=${FUZZ_DEP_CFLAGS-$($pkgconfig --cflags $modules)}
dep_libs=${FUZZ_DEP_LIBS-$($pkgconfig --libs $modules)}
# Paths such as WX_SYSCONFDIR; the defaults match an unconfigured prefix.
cppflags=${FUZZ_CPPFLAGS:-"-DWX_SYSCONFDIR=\"/usr/local/etc\"
    -DWX_LOCALSTATEDIR=\"/usr/local/var\" -DWX_RUNSTATEDIR=\"/run\""}
common="$cflags -fno-omit-frame-pointer -fno-sanitize-recover=undefined
    -I$builddir -I$srcdir/src/common -I$srcdir/src/wxpushd $cppflags $dep_cflags"

mkdir -p "$out/obj"
objs=
for f in "$@"; do
	case $f in
	*.c)	;;
	*)	continue ;;
	esac
	o=$out/obj/$(basename "$f" .c).o
	echo "  CC       $f"
	# Coverage instrumentation without libFuzzer's main().
	$cc $common -fsanitize=fuzzer-no-link,$sanitize -c -o "$o" "$srcdir/$f"
	objs="$objs $o"
done

# An archive, so each target links only the objects it needs.
rm -f "$out/libwxpushd-fuzz.a"
ar rcs "$out/libwxpushd-fuzz.a" $objs

for f in "$srcdir"/tests/fuzz/fuzz_*.c; do
	name=$(basename "$f" .c)
	echo "  CCLD     fuzz-build/$name"
	$cc $common -fsanitize=fuzzer,$sanitize -o "$out/$name" "$f" \
	    "$out/libwxpushd-fuzz.a" $dep_libs
done
echo "fuzz targets in $out; seed corpora in $srcdir/tests/fuzz/<target>.in"

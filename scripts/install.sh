#!/usr/bin/env bash
# Install libvmsrs the way a C or C++ developer expects: the shared library with its SONAME
# symlinks, the header, and a pkg-config file.
#
#   scripts/install.sh [--prefix P] [--libdir D] [--includedir D] [--destdir D] [--no-build]
#
# Also read from the environment (options win): PREFIX (default /usr/local), LIBDIR (default
# $PREFIX/lib), INCLUDEDIR (default $PREFIX/include), DESTDIR (staging root for packaging:
# files go under $DESTDIR, the paths written into vmsrs.pc do not include it). Builds the
# release library first (cargo build --release -p vmsrs --lib) unless --no-build.
#
# Installs, for crate version X.Y.Z (SONAME libvmsrs.so.X, set by build.rs):
#   $LIBDIR/libvmsrs.so.X.Y.Z                      the library
#   $LIBDIR/libvmsrs.so.X -> libvmsrs.so.X.Y.Z     what programs load at run time
#   $LIBDIR/libvmsrs.so   -> libvmsrs.so.X         what -lvmsrs finds at link time
#   $INCLUDEDIR/vmsrs.h
#   $LIBDIR/pkgconfig/vmsrs.pc                     pkg-config --cflags --libs vmsrs
set -euo pipefail

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "install.sh: $*" >&2; exit 1; }

prefix=${PREFIX:-/usr/local}
libdir=${LIBDIR:-}
includedir=${INCLUDEDIR:-}
destdir=${DESTDIR:-}
build=1
while (($#)); do
    case $1 in
        --prefix) prefix=${2:?--prefix needs a value}; shift 2 ;;
        --prefix=*) prefix=${1#*=}; shift ;;
        --libdir) libdir=${2:?--libdir needs a value}; shift 2 ;;
        --libdir=*) libdir=${1#*=}; shift ;;
        --includedir) includedir=${2:?--includedir needs a value}; shift 2 ;;
        --includedir=*) includedir=${1#*=}; shift ;;
        --destdir) destdir=${2:?--destdir needs a value}; shift 2 ;;
        --destdir=*) destdir=${1#*=}; shift ;;
        --no-build) build=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
prefix=${prefix%/}
[[ $prefix == /* ]] || die "the prefix must be an absolute path (got '$prefix')"
libdir=${libdir:-$prefix/lib}
includedir=${includedir:-$prefix/include}
[[ $libdir == /* && $includedir == /* ]] || die "--libdir and --includedir must be absolute paths"

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo=${CARGO:-cargo}

# Version and target directory from cargo itself.
pkgid=$("$cargo" pkgid -p vmsrs)
version=${pkgid##*[#@]}
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+ ]] || die "cannot read the crate version from '$pkgid'"
major=${version%%.*}
target_dir=${CARGO_TARGET_DIR:-$("$cargo" metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')}
[[ -n $target_dir ]] || die "cannot find cargo's target directory"
[[ $target_dir == /* ]] || target_dir=$root/$target_dir

if ((build)); then
    "$cargo" build --release -p vmsrs --lib
fi
lib=$target_dir/release/libvmsrs.so
[[ -f $lib ]] || die "$lib does not exist (build it: cargo build --release -p vmsrs --lib)"
soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[[ $soname == "libvmsrs.so.$major" ]] || die "$lib has SONAME '$soname', expected libvmsrs.so.$major"

real=libvmsrs.so.$version
dlib=$destdir$libdir
dinc=$destdir$includedir
install -d "$dlib" "$dlib/pkgconfig" "$dinc"
install -m 0755 "$lib" "$dlib/$real"
ln -sfn "$real" "$dlib/$soname"
ln -sfn "$soname" "$dlib/libvmsrs.so"
install -m 0644 include/vmsrs.h "$dinc/vmsrs.h"

# Paths under the prefix are written relative to ${prefix} (a relocatable .pc file).
rel() { if [[ $1 == "$prefix"/* ]]; then printf '${prefix}%s' "${1#"$prefix"}"; else printf '%s' "$1"; fi; }
esc() { printf '%s' "$1" | sed 's/[\/&|]/\\&/g'; }
sed -e "s|@PREFIX@|$(esc "$prefix")|" \
    -e "s|@LIBDIR@|$(esc "$(rel "$libdir")")|" \
    -e "s|@INCLUDEDIR@|$(esc "$(rel "$includedir")")|" \
    -e "s|@VERSION@|$(esc "$version")|" \
    scripts/vmsrs.pc.in >"$dlib/pkgconfig/vmsrs.pc"
chmod 0644 "$dlib/pkgconfig/vmsrs.pc"

echo "installed libvmsrs $version into $destdir$prefix:"
echo "  $dlib/$real (+ $soname, libvmsrs.so symlinks)"
echo "  $dinc/vmsrs.h"
echo "  $dlib/pkgconfig/vmsrs.pc"
case $libdir in
    /usr/lib|/usr/lib64|/usr/local/lib|/usr/lib/*-linux-gnu)
        # Refresh the loader's cache for a system directory (never add other directories
        # to it: that is the administrator's choice, in /etc/ld.so.conf.d).
        if [[ -z $destdir && $EUID -eq 0 && -x /sbin/ldconfig ]]; then /sbin/ldconfig || true; fi ;;
    *) echo "note: $libdir is not a default library directory: run programs with" \
            "LD_LIBRARY_PATH=$libdir, or link them with -Wl,-rpath,$libdir" \
            "(pkg-config --variable=libdir vmsrs)" ;;
esac

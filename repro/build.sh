#!/bin/sh
# build.sh prog.c [extra gcc args] -> ./prog
set -e
cd "$(dirname "$0")"
src=$1; shift
R=$(cd .. && pwd)
gcc -O2 -g -pthread -I "$R/include" "$src" -o "${src%.c}" -L "$R/target/release" -lvmsrs -Wl,-rpath,"$R/target/release" "$@"

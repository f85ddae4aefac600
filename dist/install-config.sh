#!/bin/sh
# meson install script: install the default udpmux.conf into SYSCONFDIR/udpmux
# unless the operator already has one there (a reinstall never overwrites it).
set -eu
src=$1
dir=${DESTDIR:-}$2
mkdir -p "$dir"
if [ -e "$dir/udpmux.conf" ]; then
    echo "keeping existing $dir/udpmux.conf"
else
    install -m 0644 "$src" "$dir/udpmux.conf"
    echo "installed $dir/udpmux.conf"
fi

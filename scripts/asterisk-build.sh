#!/usr/bin/env bash
# asterisk-build.sh - build Asterisk 22 (test equipment, from ../shared/asterisk) once into a cache
# directory outside the clone, then build res_devcluster against it.
#
# usage: scripts/asterisk-build.sh [--print-prefix] [--no-module]
#   DEVCLUSTER_TESTBED_CACHE   cache directory (default /var/cache/devcluster-testbed)
#   ASTERISK_TARBALL           source tarball (default ../shared/asterisk/asterisk-22.10.1.tar.xz)
# Idempotent: a finished build is recorded in PREFIX/.devcluster-built (the tarball's sha256 and the
# module list) and reused; the module is rebuilt only when its sources changed (make decides).
# Prints the install prefix on its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cache=${DEVCLUSTER_TESTBED_CACHE:-/var/cache/devcluster-testbed}
tarball=${ASTERISK_TARBALL:-$here/../shared/asterisk/asterisk-22.10.1.tar.xz}
print_prefix=0; build_module=1
for a in "$@"; do
  case $a in
    --print-prefix) print_prefix=1;;
    --no-module) build_module=0;;
    *) echo "asterisk-build.sh: unknown argument '$a' (expected --print-prefix or --no-module)" >&2; exit 2;;
  esac
done
[ -r "$tarball" ] || { echo "asterisk-build.sh: cannot read the Asterisk source $tarball" >&2; exit 1; }
version=$(basename "$tarball" .tar.xz)
prefix=$cache/$version/prefix
if [ "$print_prefix" = 1 ]; then echo "$prefix"; exit 0; fi

modules="pbx_config func_devstate res_corosync res_mwi_external res_mwi_external_ami res_manager_devicestate
  app_voicemail func_db app_echo func_strings app_dial chan_bridge_media bridge_simple format_wav codec_ulaw
  res_sorcery_astdb res_sorcery_config res_sorcery_memory res_sorcery_memory_cache"
stamp_want=$( { sha256sum "$tarball" | cut -d' ' -f1; echo $modules; } | sha256sum | cut -d' ' -f1)

deps="build-essential pkg-config libedit-dev libjansson-dev libxml2-dev uuid-dev libsqlite3-dev libssl-dev
  libcpg-dev libcfg-dev libcorosync-common-dev corosync iproute2 python3"
missing=$(dpkg-query -W -f='${Package} ${Status}\n' $deps 2>/dev/null | awk '$NF != "installed" {print $1}'; \
  for p in $deps; do dpkg-query -W "$p" >/dev/null 2>&1 || echo "$p"; done)
if [ -n "$(echo "$missing" | tr -d '[:space:]')" ]; then
  echo "asterisk-build.sh: installing $(echo $missing | tr '\n' ' ')" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q $deps >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q $deps >/dev/null; }
  # corosync's package enables and starts its own service on systemd machines; the testbed runs its own.
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active -q corosync 2>/dev/null; then systemctl stop corosync || true; fi
fi

if [ "$(cat "$prefix/.devcluster-built" 2>/dev/null)" != "$stamp_want" ]; then
  echo "asterisk-build.sh: building $version into $prefix (about a minute of make -j2)" >&2
  src=$cache/$version/src
  rm -rf "$src" "$prefix"; mkdir -p "$src" "$prefix"
  tar -xJf "$tarball" -C "$src" --strip-components=1
  (
    cd "$src"
    ./configure --without-pjproject-bundled --without-pjproject --prefix="$prefix" >"$cache/$version/configure.log" 2>&1
    make menuselect.makeopts >/dev/null 2>&1
    args=(--disable-all); for m in $modules; do args+=(--enable "$m"); done
    menuselect/menuselect "${args[@]}" menuselect.makeopts >/dev/null
    make -j"$(nproc)" >"$cache/$version/make.log" 2>&1 || { tail -30 "$cache/$version/make.log" >&2; exit 1; }
    make install >"$cache/$version/install.log" 2>&1
    make install-headers >>"$cache/$version/install.log" 2>&1
  )
  echo "$stamp_want" > "$prefix/.devcluster-built"
fi

if [ "$build_module" = 1 ]; then
  make -s -C "$here/Integrations/asterisk" ASTERISK_PREFIX="$prefix" >&2
fi
echo "$prefix"

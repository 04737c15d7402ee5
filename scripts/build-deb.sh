#!/usr/bin/env bash
# build-deb.sh - build the Debian package devcluster_VERSION_ARCH.deb with dpkg-deb from a release
# build: devclusterd in /usr/sbin, its systemd unit, /etc/devcluster/devcluster.conf as a conffile,
# the man pages devclusterd(8) and devcluster.conf(5), and res_devcluster.so for Asterisk when
# Integrations/asterisk has been built (scripts/asterisk-build.sh, or make there).
#
# usage: scripts/build-deb.sh [--output DIR]       (default DIR: .build/deb)
#   DEVCLUSTER_DEB_REVISION   Debian revision (default 1)
#   DEVCLUSTER_MAINTAINER     the Maintainer field
# The version is the one `devclusterd --version` prints (Devclusterd.version in
# Sources/devclusterd/Devclusterd.swift), so the package can never disagree with the binary.
# `swift build -c release` (in .build/package) runs every time: it rebuilds only what changed (a
# no-op takes seconds; the first release build several minutes on two cores), so a stale binary is
# never shipped.
# Prints the path of the package on its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
output=$here/.build/deb
while [ $# -gt 0 ]; do
  case $1 in
    --output) [ $# -ge 2 ] || { echo "build-deb.sh: --output needs a directory" >&2; exit 2; }; output=$2; shift 2;;
    *) echo "build-deb.sh: unknown argument '$1' (expected --output DIR)" >&2; exit 2;;
  esac
done
for tool in dpkg-deb dpkg-shlibdeps gzip strip md5sum; do
  command -v "$tool" >/dev/null 2>&1 || { echo "build-deb.sh: $tool is missing (apt-get install dpkg-dev binutils)" >&2; exit 1; }
done

# The Swift runtime is linked statically: the package depends only on what Debian provides.
# Relocations are resolved at start and then made read-only (-z now, -z relro), as Debian's
# hardening flags ask of a daemon. A build directory of its own: these flags do not then relink
# the release build the benchmarks use, and the build does not wait for the lock of a
# `swift test` running in .build (PackageTests runs this script from one).
flags=(-c release --static-swift-stdlib --scratch-path "$here/.build/package" -Xlinker -z -Xlinker now -Xlinker -z -Xlinker relro)
echo "build-deb.sh: swift build ${flags[*]} --product devclusterd" >&2
(cd "$here" && swift build "${flags[@]}" --product devclusterd >&2)
binary=$(cd "$here" && swift build "${flags[@]}" --show-bin-path)/devclusterd
version_line=$("$binary" --version)
upstream=${version_line#devclusterd }
[[ $upstream =~ ^[0-9][0-9A-Za-z.+~]*$ ]] || { echo "build-deb.sh: '$binary --version' printed '$version_line', not 'devclusterd VERSION'" >&2; exit 1; }
version=$upstream-${DEVCLUSTER_DEB_REVISION:-1}
arch=$(dpkg --print-architecture)
maintainer=${DEVCLUSTER_MAINTAINER:-devcluster maintainers <maintainers@users.noreply.r-seed-44268a77.example>}
# Reproducible: file dates and the changelog's date are the last commit's (SOURCE_DATE_EPOCH).
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$here" log -1 --format=%ct 2>/dev/null || date +%s)}
commit=$(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo unknown)

work=$(mktemp -d "${TMPDIR:-/tmp}/devcluster-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
install -d -m 0755 "$root/DEBIAN" "$root/usr/sbin" "$root/lib/systemd/system" "$root/etc/devcluster" \
  "$root/usr/share/man/man8" "$root/usr/share/man/man5" "$root/usr/share/doc/devcluster"

install -m 0755 "$binary" "$root/usr/sbin/devclusterd"
strip --remove-section=.comment --remove-section=.note --strip-unneeded "$root/usr/sbin/devclusterd"
install -m 0644 "$here/packaging/devclusterd.service" "$root/lib/systemd/system/devclusterd.service"
install -m 0644 "$here/packaging/devcluster.conf" "$root/etc/devcluster/devcluster.conf"
install -m 0644 "$here/packaging/man/devclusterd.8" "$root/usr/share/man/man8/devclusterd.8"
install -m 0644 "$here/packaging/man/devcluster.conf.5" "$root/usr/share/man/man5/devcluster.conf.5"
gzip -9n "$root/usr/share/man/man8/devclusterd.8" "$root/usr/share/man/man5/devcluster.conf.5"
install -m 0644 "$here/packaging/copyright" "$root/usr/share/doc/devcluster/copyright"
install -d -m 0755 "$root/usr/share/lintian/overrides"
install -m 0644 "$here/packaging/debian/lintian-overrides" "$root/usr/share/lintian/overrides/devcluster"

module=$here/Integrations/asterisk/res_devcluster.so
if [ -f "$module" ]; then
  # Asterisk's module directory for --prefix=/usr, where `make install` puts it (Integrations/asterisk).
  install -d -m 0755 "$root/usr/lib/asterisk/modules"
  install -m 0644 "$module" "$root/usr/lib/asterisk/modules/res_devcluster.so"
  strip --remove-section=.comment --remove-section=.note --strip-unneeded "$root/usr/lib/asterisk/modules/res_devcluster.so"
  install -d -m 0755 "$root/usr/share/doc/devcluster/examples"
  install -m 0644 "$here/Integrations/asterisk/res_devcluster.conf.sample" "$root/usr/share/doc/devcluster/examples/res_devcluster.conf"
  echo "build-deb.sh: including $module" >&2
else
  echo "build-deb.sh: $module not built; the package has no Asterisk module" >&2
fi

{
  echo "devcluster ($version) unstable; urgency=medium"
  echo
  echo "  * Built from commit $commit by scripts/build-deb.sh."
  echo
  echo " -- $maintainer  $(date -u -R -d "@$SOURCE_DATE_EPOCH")"
} > "$work/changelog.Debian"
gzip -9n -c "$work/changelog.Debian" > "$root/usr/share/doc/devcluster/changelog.Debian.gz"
chmod 0644 "$root/usr/share/doc/devcluster/changelog.Debian.gz"

install -m 0755 "$here/packaging/debian/postinst" "$here/packaging/debian/prerm" "$here/packaging/debian/postrm" "$root/DEBIAN/"
echo /etc/devcluster/devcluster.conf > "$root/DEBIAN/conffiles"

# Depends from the ELF files' needs, as dh_shlibdeps computes it (dpkg-shlibdeps wants a
# debian/control to read; the module's Asterisk symbols are resolved by Asterisk when it loads it).
mkdir -p "$work/src/debian"
printf 'Source: devcluster\n\nPackage: devcluster\nArchitecture: any\n' > "$work/src/debian/control"
elves=("$root/usr/sbin/devclusterd")
[ -f "$root/usr/lib/asterisk/modules/res_devcluster.so" ] && elves+=("$root/usr/lib/asterisk/modules/res_devcluster.so")
depends=$(cd "$work/src" && dpkg-shlibdeps -O --warnings=0 "${elves[@]}" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "build-deb.sh: dpkg-shlibdeps found no dependencies for ${elves[*]}" >&2; exit 1; }
# procps: the unit's ExecReload runs /bin/kill.

installed_size=$(du -k -s --apparent-size --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<EOF
Package: devcluster
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $installed_size
Depends: $depends, procps
Suggests: asterisk
Section: net
Priority: optional
Description: cluster daemon sharing PBX device state and MWI over Totem
 devclusterd runs on every server of a PBX cluster. The daemons form a
 Totem single ring among themselves (the protocol behind corosync), which
 gives every server the same totally ordered messages and membership views;
 on top of it they share device states, hints and message-waiting
 indications. The Asterisk module res_devcluster (included when it was
 built) replaces res_corosync.
 .
 The package installs the daemon, its systemd unit (not enabled: configure
 /etc/devcluster/devcluster.conf, then systemctl enable --now devclusterd),
 a one-node sample configuration and the manual pages.
EOF
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | grep -vxF -f <(sed 's|^/||' DEBIAN/conffiles) \
  | LC_ALL=C sort | xargs -d '\n' md5sum > DEBIAN/md5sums)
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/md5sums" "$root/DEBIAN/conffiles"
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

mkdir -p "$output"
package=$output/devcluster_${version}_${arch}.deb
# xz level 1: 5 s instead of 35 s for the default level, for a package 15% larger (18 MB, not 15).
dpkg-deb --root-owner-group -Zxz -z1 --build "$root" "$package" >&2
echo "$package"

#!/usr/bin/env bash
# Build a busybox root filesystem tarball from the host's static busybox (Debian package
# busybox-static, installed if missing): bin/busybox plus a symlink per applet, /etc/passwd
# and /etc/group (root, nobody), and the usual empty directories. The output is deterministic
# (sorted entries, mtime 0, owner root) so two runs give byte-identical tarballs — and one
# image id per content when imported with a fixed timestamp.
#
#   labs/images/busybox.sh OUT.tar        then: warren image import OUT.tar bb:1
set -euo pipefail

out=${1:?usage: $0 OUT.tar}
fail() { printf 'busybox.sh: %s\n' "$*" >&2; exit 1; }

busybox=/bin/busybox
if ! "$busybox" --list >/dev/null 2>&1 || ! file -L "$busybox" 2>/dev/null | grep -q 'statically linked'; then
    if ! dpkg -s busybox-static >/dev/null 2>&1; then
        echo "installing busybox-static (apt-get)" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q busybox-static >/dev/null \
            || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q busybox-static >/dev/null; } \
            || fail "cannot install busybox-static"
    fi
fi
[ -x "$busybox" ] || fail "$busybox is missing"
# A dynamically linked busybox would not run in a rootfs without libc.
if command -v file >/dev/null && ! file -L "$busybox" | grep -q 'statically linked'; then
    fail "$busybox is not statically linked (install busybox-static)"
fi

umask 022
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
chmod 0755 "$root"
mkdir -p "$root"/{bin,dev,etc,proc,root,sys,tmp,usr,var/run}
chmod 1777 "$root/tmp"
chmod 0700 "$root/root"
install -m 0755 "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
ln -s bin "$root/sbin"
ln -s ../bin "$root/usr/bin"
ln -s ../bin "$root/usr/sbin"
cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat >"$root/etc/group" <<'GROUP'
root:x:0:
nogroup:x:65534:
GROUP
chmod 0644 "$root/etc/passwd" "$root/etc/group"

tar --create --file "$out" --directory "$root" \
    --sort=name --format=gnu --mtime=@0 --owner=0 --group=0 --numeric-owner \
    --no-acls --no-xattrs --no-selinux .
echo "wrote $out ($(du -h "$out" | cut -f1), $("$busybox" --list | wc -l) applets)" >&2

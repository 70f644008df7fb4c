# The hostile-container probes, run by busybox sh inside a container with the static probe
# program at /probe (see probe.c). One line per probe: NAME|allowed or denied|detail.
# Every probe is harmless where it is allowed (--privileged): it stops before changing
# anything outside the container (a cgroup hierarchy is mounted but never written, host
# files are opened but never written, ids and times are invalid or read-only).
# Arguments: the host PID of another container's process (for the ptrace probe).
other_pid=${1:-999999}

line() { printf '%s|%s|%s\n' "$1" "$2" "$(echo "$3" | tr '\n|' '  ' | cut -c1-90)"; }
# try NAME CMD...: allowed when CMD succeeds
try() {
    name=$1; shift
    if out=$("$@" 2>&1); then line "$name" allowed "$out"; else line "$name" denied "$out"; fi
}
# sys NAME ARGS...: a probe program call
sys() {
    name=$1; shift
    out=$(/probe "$@" 2>&1)
    line "$name" "${out%% *}" "$out"
}

mkdir -p /tmp/probe-mnt /tmp/probe-cg
try mount-tmpfs        mount -t tmpfs none /tmp/probe-mnt
# The first step of the release_agent escape: a cgroup v1 hierarchy of one's own.
try mount-cgroup-v1    mount -t cgroup -o memory none /tmp/probe-cg
if grep -q ' /proc/sys ' /proc/mounts; then
    try remount-proc-sys mount -o remount,rw /proc/sys
else
    line remount-proc-sys allowed "/proc/sys is not a read-only mount"
fi
try remount-sys        mount -o remount,rw /sys
sys write-core-pattern open-w /proc/sys/kernel/core_pattern
if grep -q ' /proc/keys ' /proc/mounts; then
    try umount-masked  umount /proc/keys
else
    line umount-masked allowed "/proc/keys is not masked"
fi
# A block device node of the host's first disk: creating it is allowed (as under Docker),
# opening it must not be.
disk=$(ls /sys/dev/block 2>/dev/null | head -n1)
if [ -n "$disk" ] && mknod /tmp/probe-disk b "${disk%%:*}" "${disk##*:}" 2>/dev/null; then
    sys open-block-device open-r /tmp/probe-disk
else
    line open-block-device denied "mknod of block device ${disk:-?} refused"
fi
if mknod /tmp/probe-mem c 1 1 2>/dev/null; then
    sys open-dev-mem open-r /tmp/probe-mem
else
    line open-dev-mem denied "mknod refused"
fi
try ip-addr-add        ip addr add 192.0.2.77/32 dev lo
try ip-link-mtu        ip link set lo mtu 1400
try unshare-user       unshare -U true
try unshare-net        unshare -n true
try unshare-mount      unshare -m true
try nsenter-pid1       nsenter -t 1 -m -n true
sys keyctl             keyctl
# Another container's processes are not even visible: its PID does not exist here.
out=$(/probe ptrace "$other_pid" 2>&1)
case $out in
    *ESRCH*) line ptrace-other denied "no such process here: $out" ;;
    *) line ptrace-other "${out%% *}" "$out" ;;
esac
sys reboot             reboot
sys load-module        module
sys set-clock          clock
cg=$(find /sys/fs/cgroup -name cgroup.procs 2>/dev/null | head -n1)
sys write-cgroup       open-w "${cg:-/sys/fs/cgroup/cgroup.procs}"
try ping-gateway       ping -c1 -W2 "${PING_TARGET:-127.0.0.1}"
try ordinary-work      sh -c 'echo hi > /tmp/probe-file && chown 65534 /tmp/probe-file && cat /tmp/probe-file'

#!/usr/bin/env bash
# Lab 11: what a container may not do. Every container runs with Docker's default
# confinement: 14 capabilities instead of root's 40, a seccomp filter equivalent to Docker's
# default profile, a device cgroup that allows only the standard nodes, masked and read-only
# /proc paths, a read-only /sys and its own cgroups mounted read-only. This lab runs the same
# hostile probes as the test suite (tests/confinement/probes.sh) in a default container, with
# --cap-drop ALL and with --privileged, prints the table, checks every verdict, and shows the
# release_agent escape failing where it used to run code as root on the host.
# Self-checking and self-cleaning. Run it in a sandbox: labs/run.sh labs/11-confinement.sh
set -euo pipefail
LAB=11
. "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")/.." && pwd)

say "1. Start a private agent; a busybox root filesystem with the probes"
lab_start_agent
ROOT=$(busybox_rootfs)
command -v cc >/dev/null || fail "cc not found (install gcc and libc6-dev: the probe program is built static)"
cc -static -O2 -o "$ROOT/probe" "$here/tests/confinement/probe.c" || fail "cannot build the probe program"
cp "$here/tests/confinement/probes.sh" "$ROOT/probes.sh"
"$WARREN" run -d --name lab11-other "$ROOT" sleep 1000 >/dev/null
defer "'$WARREN' rm -f lab11-other"
other=$("$WARREN" inspect -f '{{.State.Pid}}' lab11-other)
note "another container, lab11-other, runs with host PID $other (the ptrace target)"

declare -A RESULT DETAIL
run_probes() { # MODE FLAGS...
    local mode=$1; shift
    local out name verdict detail
    out=$("$WARREN" run --rm --network none "$@" "$ROOT" sh /probes.sh "$other") \
        || fail "the probes did not run ($mode)"
    while IFS='|' read -r name verdict detail; do
        RESULT["$mode/$name"]=$verdict
        if [ "$mode" = default ]; then DETAIL["$name"]=$detail; fi
    done <<<"$out"
}
say "2. The probes, in three containers"
run_probes default
run_probes capdropall --cap-drop ALL
run_probes privileged --privileged

PROBES=(mount-tmpfs mount-cgroup-v1 remount-proc-sys remount-sys write-core-pattern umount-masked
        open-block-device open-dev-mem ip-addr-add ip-link-mtu unshare-user unshare-net
        unshare-mount nsenter-pid1 keyctl ptrace-other reboot load-module set-clock write-cgroup
        ping-gateway ordinary-work)
printf '\n   %-20s %-9s %-13s %-11s %s\n' probe default "cap-drop ALL" privileged "why (default)"
for p in "${PROBES[@]}"; do
    printf '   %-20s %-9s %-13s %-11s %s\n' "$p" "${RESULT[default/$p]:-?}" \
        "${RESULT[capdropall/$p]:-?}" "${RESULT[privileged/$p]:-?}" "${DETAIL[$p]:-}"
done

say "3. Check every verdict"
for p in "${PROBES[@]}"; do
    case $p in
        ping-gateway|ordinary-work)
            [ "${RESULT[default/$p]}" = allowed ] || fail "default: $p should work"
            [ "${RESULT[capdropall/$p]}" = denied ] || fail "--cap-drop ALL: $p should be refused"
            [ "${RESULT[privileged/$p]}" = allowed ] || fail "--privileged: $p should work" ;;
        ptrace-other)
            for m in default capdropall privileged; do
                [ "${RESULT[$m/$p]}" = denied ] || fail "$m: another container's process is reachable"
            done ;;
        *)
            [ "${RESULT[default/$p]}" = denied ] || fail "default: $p should be refused"
            [ "${RESULT[capdropall/$p]}" = denied ] || fail "--cap-drop ALL: $p should be refused"
            [ "${RESULT[privileged/$p]}" = allowed ] || fail "--privileged: $p should be allowed (as under Docker)" ;;
    esac
done
note "default and --cap-drop ALL refuse all ${#PROBES[@]} probes but ping and ordinary work (and --cap-drop ALL those too);"
note "--privileged allows what Docker's --privileged allows; other containers stay invisible in every mode"

say "4. The release_agent escape, step by step, from a default container"
marker="$LAB_DIR/escaped"
# (an `if` around it: the escape is expected to fail, which is not an error of the lab)
if out=$("$WARREN" run --rm "$ROOT" sh -c "set -e
    mkdir -p /tmp/cgrp
    mount -t cgroup -o memory cgroup /tmp/cgrp
    mkdir -p /tmp/cgrp/x && echo 1 > /tmp/cgrp/x/notify_on_release
    echo \"\$(sed -n 's/.*upperdir=\\([^,]*\\).*/\\1/p' /proc/mounts)/cmd\" > /tmp/cgrp/release_agent
    printf '#!/bin/sh\\ntouch $marker\\n' > /cmd && chmod +x /cmd
    sh -c 'echo \$\$ > /tmp/cgrp/x/cgroup.procs'" 2>&1); then
    fail "the escape script ran to the end: $out"
fi
echo "$out" | sed 's/^/   /'
has "$out" "mount" || fail "the escape was not stopped at mount"
sleep 0.5
[ ! -e "$marker" ] || fail "code ran on the host: $marker exists"
note "stopped at its first step (no CAP_SYS_ADMIN, mount blocked by seccomp); nothing ran on the host"
note "and the overlay shows no host path to aim at: $("$WARREN" run --rm "$ROOT" sh -c "grep ' / ' /proc/mounts | cut -c1-80")"

say "5. What the container sees of itself"
"$WARREN" run --rm "$ROOT" sh -c 'grep -E "^(Cap(Eff|Bnd)|NoNewPrivs|Seccomp):" /proc/self/status; echo "/proc/1/exe -> $(readlink /proc/1/exe)"; ls /sys/fs/cgroup' | sed 's/^/   /'
"$WARREN" rm -f lab11-other >/dev/null

lab_finish

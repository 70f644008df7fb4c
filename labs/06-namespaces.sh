#!/usr/bin/env bash
# Lab 06: what a container's own namespaces isolate. Each container gets new UTS, PID, IPC and
# mount namespaces (and the network namespace the agent wired): its own hostname, its own
# process tree with a tiny init as PID 1, its own System V IPC objects, its own mounts — and
# orphaned processes that exit are reaped by the init instead of piling up as zombies.
# Self-checking (non-zero exit with "FAIL: ..." on the first mismatch; "PASS" at the end) and
# self-cleaning. Run it in a sandbox: labs/run.sh labs/06-namespaces.sh
set -euo pipefail
LAB=06
. "$(dirname "$0")/lib.sh"

say "1. Start a private agent and make a busybox root filesystem (plus util-linux ipcmk/ipcs)"
lab_start_agent
ROOT=$(busybox_rootfs)
add_host_binary "$ROOT" /usr/bin/ipcmk
add_host_binary "$ROOT" /usr/bin/ipcs
# Mounting needs CAP_SYS_ADMIN, which containers do not get by default (lab 11); this one asks
# for it so step 5 can show a mount of its own.
"$WARREN" run -d --name lab6 --hostname lab6-box --cap-add SYS_ADMIN "$ROOT" sleep 1000 >/dev/null
defer "'$WARREN' rm -f lab6"

say "2. UTS: the container has its own hostname"
inside=$("$WARREN" exec lab6 hostname)
echo "   inside: $inside   host: $(hostname)"
[ "$inside" = lab6-box ] || fail "hostname inside is '$inside', expected lab6-box"
[ "$(hostname)" != lab6-box ] || fail "the host's hostname changed"

say "3. PID: a process tree of its own; host processes are invisible"
sleep 1000 & host_sleeper=$!
defer "kill $host_sleeper"
echo "   \$ warren exec lab6 ps"
tree=$("$WARREN" exec lab6 ps -o pid,comm)
echo "$tree" | sed 's/^/   /'
has "$tree" '^ *1 warren-init' || fail "PID 1 is not Warren's init"
has "$tree" '^ *2 sleep' || fail "the command is not PID 2 (the init's child)"
if has "$tree" "^ *$host_sleeper "; then fail "a host process is visible inside"; fi
[ "$(echo "$tree" | wc -l)" -le 5 ] || fail "more processes inside than init, the command and ps"
note "inside: the init (1), the command (2) and ps itself; nothing of the host's"
echo "   \$ warren run --rm --init=false ROOTFS sh -c 'echo \$\$'"
pid=$(run_out --init=false "$ROOT" sh -c 'echo $$')
[ "$pid" = 1 ] || fail "without the init the command should be PID 1, got $pid"
note "with --init=false the command itself is PID 1 (then nothing else reaps orphans)"

say "4. IPC: a message queue made inside is not the host's"
echo "   \$ warren exec lab6 ipcmk -Q"
made=$("$WARREN" exec lab6 ipcmk -Q)
echo "   $made"
qid=$(grep -o '[0-9]*$' <<<"$made")
[ -n "$qid" ] || fail "ipcmk printed no queue id"
inside=$("$WARREN" exec lab6 ipcs -q)
echo "$inside" | sed 's/^/   inside: /'
has "$inside" "^0x[0-9a-f]+ +$qid " || fail "queue $qid is not listed inside"
host=$(ipcs -q)
echo "$host" | sed 's/^/   host:   /'
if has "$host" "^0x[0-9a-f]+ +$qid "; then fail "the container's queue $qid shows in the host's ipcs -q"; fi
note "the host's ipcs -q does not list queue $qid: System V IPC is per IPC namespace"

say "5. Mount: mounts made inside are not seen outside"
if "$WARREN" run --rm "$ROOT" mount -t tmpfs x /mnt 2>/dev/null; then
    fail "a default container could mount a file system"
fi
note "a default container may not mount anything (no CAP_SYS_ADMIN); lab6 runs with --cap-add SYS_ADMIN"
"$WARREN" exec lab6 sh -c 'mkdir -p /mnt/lab6 && mount -t tmpfs lab6-tmpfs /mnt/lab6'
has "$("$WARREN" exec lab6 cat /proc/mounts)" '^lab6-tmpfs /mnt/lab6 tmpfs' || fail "the mount is not there inside"
if grep -q lab6-tmpfs /proc/mounts; then fail "the container's mount leaked to the host"; fi
note "lab6-tmpfs is mounted inside only"
note "and the container's root is an overlay: $("$WARREN" exec lab6 sh -c 'grep " / " /proc/mounts | cut -d" " -f1-3')"

say "6. Zombies: orphans that exit are reaped by the init"
"$WARREN" run -d --name lab6-z "$ROOT" sh -c "for i in 1 2 3; do sh -c 'sleep 0.1 &'; done; exec sleep 1000" >/dev/null
defer "'$WARREN' rm -f lab6-z"
sleep 1
states=$("$WARREN" exec lab6-z sh -c 'for f in /proc/[0-9]*/stat; do cut -d" " -f2,3 "$f"; done')
echo "$states" | sed 's/^/   /'
if has "$states" ' Z$'; then fail "a zombie was left in the container"; fi
note "three orphaned sleeps exited and were reaped: no process in state Z"

say "7. Remove the containers"
"$WARREN" rm -f lab6 lab6-z >/dev/null

lab_finish

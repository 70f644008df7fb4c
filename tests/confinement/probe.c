/* Syscall probes for the hostile-container suite (tests/confinement.rs, labs/11-confinement.sh).
 *
 * Each probe makes one system call that a confined container must not be allowed to make,
 * chosen so that it changes nothing even where it is allowed (--privileged): invalid or
 * read-only arguments that the kernel rejects only after its permission checks. It prints
 * "allowed" or "denied" and the errno, and exits 0 when allowed, 1 when denied (EPERM or
 * EACCES: a capability check or seccomp said no; EROFS: a read-only mount), 2 on a usage
 * error.
 *
 * Built by the tests with `cc -static`, so it runs in a bare busybox root filesystem. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/keyctl.h>
#include <linux/reboot.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int report(long ret) {
    if (ret >= 0) {
        printf("allowed\n");
        return 0;
    }
    int e = errno;
    int denied = (e == EPERM || e == EACCES || e == EROFS);
    printf("%s (%s)\n", denied ? "denied" : "allowed", strerrorname_np(e));
    return denied ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: probe keyctl|reboot|module|clock|ptrace PID|open-w PATH|open-r PATH\n");
        return 2;
    }
    const char *what = argv[1];
    errno = 0;
    if (!strcmp(what, "keyctl")) /* read-only: the id of the thread keyring */
        return report(syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_THREAD_KEYRING, 0));
    if (!strcmp(what, "reboot")) /* only toggles ctrl-alt-del; EINVAL in a child PID namespace */
        return report(syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2,
                              LINUX_REBOOT_CMD_CAD_OFF, NULL));
    if (!strcmp(what, "module")) /* no module behind fd -1: EBADF once permitted */
        return report(syscall(SYS_finit_module, -1, "", 0));
    if (!strcmp(what, "clock")) { /* an invalid time: EINVAL once permitted */
        struct timespec ts = {.tv_sec = 0, .tv_nsec = -1};
        return report(syscall(SYS_clock_settime, CLOCK_REALTIME, &ts));
    }
    if (!strcmp(what, "ptrace") && argc == 3) { /* attach, then let go at once */
        long pid = strtol(argv[2], NULL, 10);
        long ret = ptrace(PTRACE_ATTACH, (pid_t)pid, NULL, NULL);
        if (ret == 0)
            ptrace(PTRACE_DETACH, (pid_t)pid, NULL, NULL);
        return report(ret);
    }
    if ((!strcmp(what, "open-w") || !strcmp(what, "open-r")) && argc == 3) {
        /* open only: nothing is read or written */
        int fd = open(argv[2], what[5] == 'w' ? O_WRONLY : O_RDONLY);
        int ret = report(fd);
        if (fd >= 0)
            close(fd);
        return ret;
    }
    fprintf(stderr, "probe: unknown probe %s\n", what);
    return 2;
}

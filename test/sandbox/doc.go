// Package sandbox boots a real systemd as PID 1 of a fresh set of Linux
// namespaces on the current machine, so that integration tests (and demos)
// can exercise systemctl, systemd-run, unit files, the journal, D-Bus and
// logind against a live service manager, then tears it down without leaving
// anything behind.
//
// # Technique
//
// The host does not need to run systemd itself. Boot does, as root:
//
//  1. Creates a cgroup2 directory <cgroup2 root>/sitectl-sandbox-<id>/ with
//     two children: "ns" (which becomes the root of the sandbox's cgroup
//     namespace, i.e. the "/" the inner systemd manages) and "supervisor"
//     (where the host-side unshare process is parked once the sandbox's
//     PID 1 exists, so that "ns" contains only processes of the sandbox).
//  2. Starts `unshare --pid --fork --mount --cgroup --uts --ipc
//     --propagation private --kill-child` (plus --net with Options.NetNS,
//     whose veth pair is then created from the host side) directly inside "ns"
//     (clone3 with CLONE_INTO_CGROUP), with Pdeathsig=SIGKILL.
//  3. An embedded bash script then, inside the new mount namespace, mounts a
//     tmpfs in the host work dir /var/tmp/sitectl-sandbox-<id>/ns, builds an
//     overlay (lower: the host's /, upper: that tmpfs) and mounts fresh
//     proc, sysfs (read-only), cgroup2, /run, /tmp, and a private /dev on it,
//     hides the host's unit enablement, pivot_roots into it, makes its
//     mounts shared within the sandbox (as systemd does on a real boot and
//     nspawn for a container: service credentials depend on it), and execs
//     /usr/lib/systemd/systemd --system with $container set.
//  4. Boot polls `systemctl is-system-running --wait` through nsenter until
//     the manager reports "running".
//
// Commands run inside through `nsenter -t <pid> -m -p -C -u -i -r -w`, with
// a fixed, minimal environment. Every write the sandbox does to the file
// system lands in the overlay's tmpfs upper layer and vanishes with it.
//
// # Traps this package avoids
//
// Why cgroup first: the root of a cgroup namespace is the cgroup of the
// process at the moment it calls unshare(CLONE_NEWCGROUP). The unshare
// process must therefore already sit in the sandbox's own cgroup, or the
// inner systemd would see (and try to manage) the test's cgroup, and
// cleanup could not be done with one cgroup.kill. After poweroff the cgroup
// tree still has children (init.scope, ...), and cgroupfs directories can
// only be removed leaf first, so removal is depth-first.
//
// Hybrid versus unified hosts: systemd 252 needs a cgroup2 hierarchy it can
// own. On a hybrid host (cgroup v1 controllers under /sys/fs/cgroup/* and a
// controller-less cgroup2 at /sys/fs/cgroup/unified) the sandbox cgroups are
// created under /sys/fs/cgroup/unified; on a pure cgroup2 host they are
// created under /sys/fs/cgroup itself. Inside, cgroup2 is always mounted at
// /sys/fs/cgroup, so systemd runs in unified mode either way. Detection is by
// file system magic (statfs), not by guessing from paths.
//
// Why not the host's /tmp: systemd-tmpfiles inside would clean it, and a
// tmp.mount could shadow it; the sandbox gets its own tmpfs on /tmp (and
// /run, /dev/shm). As a consequence files under the host's /tmp, such as
// testing.T.TempDir, are NOT visible inside. Use WriteFile or CopyFile.
// Other host paths are visible read-only-in-effect through the overlay's
// lower layer, but copy files in explicitly anyway.
//
// Why a private /dev: bind-mounting the host's /dev lets the sandbox create
// /dev/log, /dev/initctl and friends on the host, and lets getty units grab
// the host's console and ttys. The sandbox gets a tmpfs /dev with only null,
// zero, full, random, urandom and tty bound in, a new devpts instance, and a
// pseudo-terminal as /dev/console whose output is kept in the work dir
// (console.log) for boot diagnostics. Getty units are masked.
//
// Why /proc/sys and /sys are read-only: the sandbox shares the host kernel.
// With them writable, systemd-sysctl, systemd-binfmt (which unregisters all
// binfmt_misc entries on stop) and friends would reconfigure the host.
// Read-only, their ConditionPathIsReadWrite= makes them skip, as in any
// container.
//
// Host unit enablement: the overlay's lower layer is the host's /, so by
// default the sandbox would start whatever the host enabled (a database, a
// web server, apt timers) and two sandboxes would fight over the same TCP
// ports (the network namespace is shared with the host). Unless
// Options.KeepHostUnits is set, the *.wants/*.requires directories under
// /etc/systemd/system and the SysV generator are hidden inside the sandbox,
// so only what the distribution's static units pull in is started
// (journald, dbus, logind, ...).
//
// Networking is shared with the host by default: a TCP listener inside is
// reachable at 127.0.0.1 from the host and vice versa. With Options.NetNS
// the sandbox gets a network namespace of its own, joined to the host's by
// a veth pair with the given addresses (see NetNS).
//
// # Teardown
//
// Close first kills commands still running through nsenter (see below),
// then powers the sandbox off by sending systemd SIGRTMIN+4 (its documented
// poweroff request, what machinectl poweroff uses), waits up to 20s, then
// writes 1 to cgroup.kill, waits for unshare, removes the cgroup tree
// depth-first and the work dir. If the test process dies, Pdeathsig kills
// unshare and unshare's --kill-child kills the sandbox's PID 1, which takes
// the whole PID namespace with it; only empty cgroup directories and the work
// dir remain, and ReapStale (also run once per process by Boot) removes
// those. CloseAll and HandleSignals cover interrupted runs.
//
// The nsenter trap: nsenter forks the command into the sandbox's PID
// namespace and waits for it with WUNTRACED; if the child stops, nsenter
// stops itself too. systemd-shutdown SIGSTOPs every process of the namespace
// before killing it, so a command still running at poweroff leaves a
// stopped nsenter and an unreaped zombie inside, and the namespace cannot
// finish dying (systemd-shutdown waits 90s). Likewise, killing nsenter
// itself orphans its child to the host's init, which on some hosts reaps
// lazily (about every 10s here). Hence Close kills such commands first and
// resumes their nsenter, and a cancelled Command kills the command's process
// group but spares nsenter.
package sandbox

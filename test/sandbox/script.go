package sandbox

// innerScript is written to WORKDIR/setup.sh and runs as `bash setup.sh
// WORKDIR CONSOLE SYSTEMD UNIT KEEP_HOST_UNITS SEED` as PID 1 of the new PID
// namespace, in a private mount namespace, and ends by exec'ing systemd. Its
// stdout and stderr go to setup.log in the host work dir. It mounts over
// WORKDIR/ns only, so the script itself stays readable while bash runs it.
const innerScript = `set -euo pipefail
umask 022
W=$1 CONSOLE=$2 SYSTEMD=$3 UNIT=$4 KEEP_HOST_UNITS=$5 SEED=$6
say() { echo "sitectl-sandbox: $*" >&2; }
trap 'say "setup failed (exit $?) at: $BASH_COMMAND"' ERR

# Overlay of the host's / with a tmpfs upper layer. The tmpfs must be a
# separate mount: overlayfs rejects an upper dir that lies inside the lower
# layer on the same file system.
T=$W/ns
mount -t tmpfs -o mode=0700 sitectl-sandbox "$T"
mkdir -m 0755 "$T/upper" "$T/work" "$T/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$T/upper,workdir=$T/work" "$T/root"
N=$T/root
if [ "$(stat -f -c %T "$N")" != overlayfs ]; then
	say "$N is not an overlay, refusing to continue"
	exit 1
fi

mount -t proc -o nosuid,nodev,noexec proc "$N/proc"
for p in sys sysrq-trigger; do
	[ -e "$N/proc/$p" ] || continue
	mount --bind "$N/proc/$p" "$N/proc/$p"
	mount -o remount,bind,ro "$N/proc/$p"
done
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$N/sys"
mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$N/sys/fs/cgroup"
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$N/run"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$N/tmp"

# Private /dev: never let the sandbox write into the host's devtmpfs.
mount -t tmpfs -o mode=0755,nosuid sitectl-dev "$N/dev"
for d in null zero full random urandom tty; do
	touch "$N/dev/$d"
	mount --bind "/dev/$d" "$N/dev/$d"
done
# The kernel log, so that what generators log there can be checked. Writes
# only append log lines to the host's ring buffer.
if [ -c /dev/kmsg ]; then
	touch "$N/dev/kmsg"
	mount --bind /dev/kmsg "$N/dev/kmsg"
fi
mkdir -m 0755 "$N/dev/pts"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,nosuid,noexec devpts "$N/dev/pts"
ln -s pts/ptmx "$N/dev/ptmx"
mkdir -m 1777 "$N/dev/shm"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$N/dev/shm"
ln -s /proc/self/fd "$N/dev/fd"
ln -s /proc/self/fd/0 "$N/dev/stdin"
ln -s /proc/self/fd/1 "$N/dev/stdout"
ln -s /proc/self/fd/2 "$N/dev/stderr"
touch "$N/dev/console"
if [ "$CONSOLE" = - ]; then
	mount --bind /dev/null "$N/dev/console"
else
	mount --bind "$CONSOLE" "$N/dev/console"
fi

# Units. Everything below writes into the overlay's upper layer only.
S=$N/etc/systemd/system
mkdir -p "$S"
if [ "$KEEP_HOST_UNITS" != 1 ]; then
	for w in "$S"/*.wants "$S"/*.requires "$S"/*.upholds; do
		if [ -e "$w" ] || [ -L "$w" ]; then rm -rf -- "$w"; fi
	done
	mkdir -p "$N/etc/systemd/system-generators"
	ln -sfn /dev/null "$N/etc/systemd/system-generators/systemd-sysv-generator"
fi
for u in console-getty.service container-getty@.service getty@.service serial-getty@.service; do
	rm -rf -- "${S:?}/$u"
	ln -s /dev/null "$S/$u"
done

# Files that must be there at boot (Options.Seed).
if [ "$SEED" != - ]; then
	tar -C "$N" -xf "$SEED"
fi

mkdir "$N/.sitectl-oldroot"
cd "$N"
pivot_root . .sitectl-oldroot
cd /
umount -l /.sitectl-oldroot
rmdir /.sitectl-oldroot
# Shared propagation inside the sandbox, as systemd sets it up itself when
# the kernel starts it and a container manager such as systemd-nspawn does
# for a container: systemd mounts a service's credentials in a namespace of
# its own and moves them to /run/credentials/UNIT, which the service sees
# only if the move propagates. The mounts are the sandbox's own (unshare
# --propagation private made them so), so nothing reaches the host.
mount --make-rshared /
trap - ERR
exec "$SYSTEMD" --system --unit="$UNIT"
`

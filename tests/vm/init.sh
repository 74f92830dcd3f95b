#!/bin/busybox sh
# PID 1 of the test VM (see run.sh). Stage 1 copies the initramfs into a tmpfs and switches
# to it (pivot_root, which containers need, does not work on the initramfs itself); stage 2
# sets up /proc, /sys, /dev, the cgroup hierarchies and runs /script.sh.
/bin/busybox --install -s /bin
export PATH=/bin:/usr/bin:/sbin:/usr/sbin
if [ ! -e /.stage2 ]; then
  mount -t tmpfs -o mode=755 root /mnt 2>/dev/null || { mkdir -p /mnt; mount -t tmpfs -o mode=755 root /mnt; }
  for d in /*; do
    case "$d" in /mnt|/proc|/sys|/dev) mkdir -p "/mnt$d" ;; *) cp -a "$d" /mnt/ ;; esac
  done
  touch /mnt/.stage2
  exec switch_root /mnt /init
fi

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount --make-rshared /
ip link set lo up
for m in /modules/*.ko; do [ -f "$m" ] && insmod "$m"; done
mode=$(sed -n 's/.*berth\.cgroup=\([a-z0-9]*\).*/\1/p' /proc/cmdline)

if [ "$mode" = v2 ]; then
  mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
  for c in $(cat /sys/fs/cgroup/cgroup.controllers); do
    echo "+$c" > /sys/fs/cgroup/cgroup.subtree_control
  done
  mkdir -p /sys/fs/cgroup/suite/runner
  echo $$ > /sys/fs/cgroup/suite/runner/cgroup.procs
else
  mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup
  for c in cpu cpuacct cpuset memory devices freezer blkio pids hugetlb net_cls net_prio perf_event; do
    mkdir -p "/sys/fs/cgroup/$c"
    mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c" || { rmdir "/sys/fs/cgroup/$c"; continue; }
    mkdir -p "/sys/fs/cgroup/$c/suite"
    if [ "$c" = cpuset ]; then
      cat /sys/fs/cgroup/cpuset/cpuset.cpus > /sys/fs/cgroup/cpuset/suite/cpuset.cpus
      cat /sys/fs/cgroup/cpuset/cpuset.mems > /sys/fs/cgroup/cpuset/suite/cpuset.mems
    fi
    echo $$ > "/sys/fs/cgroup/$c/suite/cgroup.procs"
  done
fi
echo "berth test VM: kernel $(uname -r), cgroup $mode, $(nproc) cpus"
sh /script.sh
echo "BERTH-VM-EXIT $?"
sync
poweroff -f

#!/usr/bin/env bash
# Starts and stops the molecule "vm" scenario's virtual machine: qemu under software
# emulation (TCG: KVM does not work on our CI machines), booting Debian's cloud kernel
# directly, with a per-run qcow2 over the cached image (image.sh) and a
# second disk holding an xfs V4 filesystem without d_type (ftype=0), which the image mounts at
# /srv/nodtype (image.sh). The only network is
# qemu's restricted user network, with the guest's ssh forwarded to 127.0.0.1:PORT.
#
#   vm.sh start RUNDIR IMAGEDIR PORT   boots in the background; qemu's pid goes to RUNDIR/qemu.pid
#   vm.sh stop RUNDIR                  kills that pid and deletes the run's disks
set -euo pipefail

start() {
  local run=$1 image=$2 port=$3
  mkdir -p "$run"
  qemu-img create -q -f qcow2 -b "$image/disk.img" -F raw "$run/root.qcow2"
  truncate -s 512M "$run/nodtype.img"
  # V4 (crc=0) is the only xfs format that can be made without d_type; kernel 6.1 still
  # mounts it, newer kernels built without CONFIG_XFS_SUPPORT_V4 refuse it.
  mkfs.xfs -q -f -m crc=0 -n ftype=0 "$run/nodtype.img" > /dev/null
  qemu-system-x86_64 -accel tcg,thread=multi -cpu max -m 1024 -smp 2 \
    -display none -no-reboot -daemonize -pidfile "$run/qemu.pid" -serial "file:$run/serial.log" \
    -kernel "$image/vmlinuz" -initrd "$image/initrd.img" \
    -append "root=/dev/vda rw console=ttyS0 panic=-1 net.ifnames=0 quiet" \
    -drive "file=$run/root.qcow2,if=virtio,format=qcow2,cache=unsafe" \
    -drive "file=$run/nodtype.img,if=virtio,format=raw,cache=unsafe" \
    -netdev "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:$port-:22" -device virtio-net-pci,netdev=n0
}

stop() {
  local run=$1 pid
  if [ -f "$run/qemu.pid" ]; then
    pid=$(cat "$run/qemu.pid")
    # Only the qemu this scenario started: a recycled pid belongs to someone else.
    if [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$(readlink -f "$(command -v qemu-system-x86_64)")" ]; then
      kill "$pid"
      for _ in $(seq 50); do
        [ -e "/proc/$pid" ] || break
        sleep 0.1
      done
      [ ! -e "/proc/$pid" ] || kill -9 "$pid"
    fi
  fi
  rm -f "$run/qemu.pid" "$run/root.qcow2" "$run/nodtype.img"
}

case ${1:-} in
  start) start "$2" "$3" "$4" ;;
  stop) stop "$2" ;;
  *) echo "usage: $0 start RUNDIR IMAGEDIR PORT | stop RUNDIR" >&2; exit 2 ;;
esac

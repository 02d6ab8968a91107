#!/usr/bin/env bash
# Starts and stops one host of the molecule "fleet" scenario: a network namespace plus its own
# mount, uts and pid namespaces, in which this machine's sshd runs with a private
# configuration. The host is reached at 10.213.IDX.2 over a veth pair from 10.213.IDX.1; it
# has no default route, so nothing it does leaves the machine.
#
# The host shares this machine's files, so everything it may write lives on tmpfs mounts
# private to its mount namespace: /srv (the driver's home: a real filesystem, not overlayfs),
# /etc/modules-load.d (the host role writes there), /tmp and /run. They vanish with it.
#
#   netns-host.sh up NAME IDX DIR PUBKEY   starts the host, root logging in with PUBKEY, and
#                                          waits for its sshd; the pid goes to DIR/pid
#   netns-host.sh down NAME DIR            kills that pid and whatever runs in the netns, removes
#                                          the netns, the veth and DIR
set -euo pipefail

up() {
  local name=$1 idx=$2 dir=$3 pubkey=$4
  install -d -m 0700 "$dir"
  cp "$pubkey" "$dir/authorized_keys"
  [ -f "$dir/hostkey" ] || ssh-keygen -q -t ed25519 -N '' -C "$name" -f "$dir/hostkey"
  ip netns add "$name"
  ip link add "v$name" type veth peer name eth0 netns "$name"
  ip addr add "10.213.$idx.1/30" dev "v$name"
  ip link set "v$name" up
  ip -n "$name" addr add "10.213.$idx.2/30" dev eth0
  ip -n "$name" link set eth0 up
  ip -n "$name" link set lo up
  # The keys are copied onto the host's own /run first: DIR may be under /tmp, which the
  # host then hides behind its tmpfs.
  # shellcheck disable=SC2016
  setsid ip netns exec "$name" unshare --mount --uts --pid --fork --kill-child --propagation private --mount-proc \
    sh -euc '
      name=$1 idx=$2 dir=$3
      hostname "$name"
      mount -t tmpfs -o mode=0755 tmpfs /run
      mkdir -m 0700 /run/sshd /run/host
      cp "$dir/hostkey" "$dir/authorized_keys" /run/host/
      mount -t tmpfs -o mode=0755 tmpfs /srv
      mount -t tmpfs -o mode=0755 tmpfs /etc/modules-load.d
      mount -t tmpfs -o mode=1777 tmpfs /tmp
      exec /usr/sbin/sshd -D -e -f /dev/null -o ListenAddress="10.213.$idx.2" \
        -o HostKey=/run/host/hostkey -o AuthorizedKeysFile=/run/host/authorized_keys \
        -o PermitRootLogin=prohibit-password -o PasswordAuthentication=no -o UsePAM=no \
        -o PidFile=none -o Subsystem="sftp internal-sftp"
    ' netns-host "$name" "$idx" "$dir" > "$dir/sshd.log" 2>&1 < /dev/null &
  echo $! > "$dir/pid"
  for _ in $(seq 100); do
    if (exec 3<> "/dev/tcp/10.213.$idx.2/22") 2> /dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "netns-host: sshd of $name is not listening:" >&2
  cat "$dir/sshd.log" >&2
  return 1
}

down() {
  local name=$1 dir=$2 pid
  if [ -f "$dir/pid" ]; then
    pid=$(cat "$dir/pid")
    # unshare --kill-child takes the host's pid namespace down with it. unshare blocks
    # SIGTERM while it waits for its child, hence SIGKILL.
    if [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$(readlink -f "$(command -v unshare)")" ]; then
      kill -KILL "$pid"
    fi
  fi
  # Let the host's processes die while the veth still carries their last packets: the
  # controller's ssh connections see them close instead of lingering.
  for _ in $(seq 50); do
    [ -n "$(ip netns pids "$name" 2>/dev/null)" ] || break
    sleep 0.1
  done
  # Deleting our end of the veth pair deletes the host's end too.
  if ip link show "v$name" > /dev/null 2>&1; then
    ip link del "v$name"
  fi
  if ip netns list | grep -q "^$name\b"; then
    # Only processes this script started can be in this netns.
    for pid in $(ip netns pids "$name"); do
      kill -9 "$pid" 2>/dev/null || true
    done
    ip netns del "$name"
  fi
  rm -rf "$dir"
}

case ${1:-} in
  up) up "$2" "$3" "$4" "$5" ;;
  down) down "$2" "$3" ;;
  *) echo "usage: $0 up NAME IDX DIR PUBKEY | down NAME DIR" >&2; exit 2 ;;
esac

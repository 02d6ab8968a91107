#!/usr/bin/env bash
# Builds, once, the Debian 12 VM that the molecule "vm" scenario boots, and prints the
# directory that holds it: vmlinuz and initrd.img (Debian's cloud kernel, booted directly by
# qemu), disk.img (an ext4 root filesystem made with mkfs.ext4 -d, used read-only as the
# backing file of a per-run qcow2; it mounts a second disk, when there is one, at
# /srv/nodtype) and id_ed25519 (root's ssh key in the image).
#
# The image lives under $GDO_VM_CACHE (default /var/tmp/graphdriver-overlay/vm) in a directory
# named after a hash of the recipe below, so a changed recipe builds a new image and the old
# one is removed. Packages come from the Debian mirror that apt is configured with.
#
# Usage: extensions/molecule/vm/image.sh    (as root; about 2 minutes the first time, then instant)
set -euo pipefail

cache=${GDO_VM_CACHE:-/var/tmp/graphdriver-overlay/vm}
suite=bookworm
packages=(systemd-sysv udev kmod iproute2 openssh-server python3 linux-image-cloud-amd64 initramfs-tools xfsprogs)
disk_size=2G

# Everything the image holds besides the packages. Runs with the root filesystem as $1 and the
# public key as $2.
configure_rootfs() {
  local root=$1 pubkey=$2
  echo gdo-vm > "$root/etc/hostname"
  printf '127.0.0.1\tlocalhost\n127.0.1.1\tgdo-vm\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$root/etc/hosts"
  # The scenario gives the VM a second disk, an xfs filesystem without d_type; mounting it at
  # boot saves a task that costs seconds under emulation.
  printf '/dev/vda / ext4 defaults 0 1\n/dev/vdb /srv/nodtype xfs nofail,x-systemd.device-timeout=10s 0 0\n' \
    > "$root/etc/fstab"
  mkdir -p "$root/srv/nodtype"
  printf '[Match]\nName=eth*\n\n[Network]\nDHCP=yes\n' > "$root/etc/systemd/network/20-dhcp.network"
  chroot "$root" systemctl enable -q systemd-networkd
  # Nothing in the guest may reach out (qemu's user network is restricted anyway): no timers.
  # And no ext4 scrubbing at boot, which costs seconds of emulated CPU.
  chroot "$root" systemctl mask -q apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer \
    e2scrub_reap.service
  # Root logs in with the key only; the empty password is for the serial console when debugging.
  chroot "$root" passwd -q -d root
  install -d -m 0700 "$root/root/.ssh"
  install -m 0600 "$pubkey" "$root/root/.ssh/authorized_keys"
  # debootstrap copies the build machine's resolver; the guest has none.
  rm -f "$root/etc/resolv.conf"
  rm -rf "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"*
}

recipe_key() {
  { echo "$suite ${packages[*]} $disk_size"; declare -f configure_rootfs; } | sha256sum | cut -c1-16
}

# The first "deb" source of the suite's main component, as apt sees it (one-line or deb822).
# shellcheck disable=SC2016  # $(...) are apt's format fields
debian_mirror() {
  apt-get indextargets --no-release-info --format '$(TARGET_OF) $(RELEASE) $(COMPONENT) $(REPO_URI)' \
    'Identifier: Packages' | awk -v suite="$suite" '$1 == "deb" && $2 == suite && $3 == "main" { print $4; exit }'
}

build() {
  local dest=$1 work mirror
  mirror=$(debian_mirror)
  if [ -z "$mirror" ]; then
    echo "molecule-vm-image: no apt source for $suite main in /etc/apt/sources.list*" >&2
    return 1
  fi
  work=$(mktemp -d "$cache/.build.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  echo "molecule-vm-image: building $dest from $mirror (about 2 minutes)" >&2
  ssh-keygen -q -t ed25519 -N '' -C graphdriver-overlay-molecule-vm -f "$work/id_ed25519"
  # The root filesystem is built on a tmpfs in a private mount namespace: whatever debootstrap
  # mounts inside it, and the tree itself, vanish with the namespace, even on failure.
  # shellcheck disable=SC2016  # the inner script expands its own arguments
  unshare --mount --propagation private bash -euo pipefail -c '
    work=$1 suite=$2 mirror=$3 disk_size=$4 packages=$5
    mkdir "$work/rootfs"
    mount -t tmpfs -o mode=0755 tmpfs "$work/rootfs"
    debootstrap --variant=minbase --include="$packages" "$suite" "$work/rootfs" "$mirror" > "$work/debootstrap.log" 2>&1 ||
      { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }
    '"$(declare -f configure_rootfs)"'
    configure_rootfs "$work/rootfs" "$work/id_ed25519.pub"
    cp "$work"/rootfs/boot/vmlinuz-* "$work/vmlinuz"
    cp "$work"/rootfs/boot/initrd.img-* "$work/initrd.img"
    ls "$work"/rootfs/lib/modules > "$work/kernel-release"
    truncate -s "$disk_size" "$work/disk.img"
    mkfs.ext4 -q -F -L root -d "$work/rootfs" "$work/disk.img"
  ' molecule-vm-image "$work" "$suite" "$mirror" "$disk_size" "$(IFS=,; echo "${packages[*]}")"
  rm -rf "$work/rootfs" "$work/debootstrap.log"
  chmod 0444 "$work/disk.img" "$work/vmlinuz" "$work/initrd.img"
  mv "$work" "$dest"
  trap - EXIT
}

if [ "$(id -u)" != 0 ]; then
  echo "molecule-vm-image: run as root (debootstrap and mkfs need it)" >&2
  exit 2
fi
mkdir -p "$cache"
dest=$cache/$suite-$(recipe_key)
exec 9> "$cache/.lock"
flock 9
if [ ! -f "$dest/disk.img" ]; then
  start=$SECONDS
  build "$dest"
  echo "molecule-vm-image: built in $((SECONDS - start)) s ($(cat "$dest/kernel-release"))" >&2
  # Images of older recipes are never used again.
  find "$cache" -mindepth 1 -maxdepth 1 -name "$suite-*" ! -path "$dest" -exec rm -rf {} +
fi
echo "$dest"

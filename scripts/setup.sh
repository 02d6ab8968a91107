#!/usr/bin/env bash
# Installs everything the demo and the tests need, idempotently: the Debian packages in
# scripts/apt-packages.txt and a project-local virtualenv (.venv) from the pinned
# requirements-dev.txt + constraints.txt. Run as root on Debian 12.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if [ "$(id -u)" != 0 ]; then
  echo "setup: run as root (apt-get, mounts and loop devices need it)" >&2
  exit 2
fi

mapfile -t pinned < <(grep -v '^#' "$repo/scripts/apt-packages.txt" | grep .)
missing=()
for spec in "${pinned[@]}"; do
  name=${spec%%=*}
  if ! dpkg-query -W -f='${Status}' "$name" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$spec")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    echo "setup: WARNING: a pinned version is gone from the mirror; installing the release's current versions" >&2
    apt-get install -y -qq --no-install-recommends "${missing[@]%%=*}" >/dev/null
  fi
fi

python=${GDO_PYTHON:-python3}
venv=$repo/.venv
stamp=$venv/.requirements.sha256
want=$(cat "$repo/requirements-dev.txt" "$repo/constraints.txt" | sha256sum | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: building $venv from requirements-dev.txt"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$repo/requirements-dev.txt" -c "$repo/constraints.txt" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  echo "$want" > "$stamp"
fi
echo "setup: ready (ansible-core $("$venv/bin/python" -c 'import ansible.release as r; print(r.__version__)'))"

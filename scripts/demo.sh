#!/usr/bin/env bash
# Sets up everything (scripts/setup.sh) and runs the main job against localhost:
# playbooks/demo.yml builds an image archive from Debian packages, imports it with the image
# role, mounts a container layer, writes into it and exports its changes. Run it again: it
# changes nothing. Arguments go to ansible-playbook (-e demo_state=absent tears it down).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$repo/scripts/setup.sh"
# The collection is used from this checkout: ansible finds it through a collections
# path whose ansible_collections/graphdriver/overlay points here.
collections=$repo/.cache/collections
mkdir -p "$collections/ansible_collections/graphdriver"
ln -sfn "$repo" "$collections/ansible_collections/graphdriver/overlay"
export ANSIBLE_COLLECTIONS_PATH=$collections
export ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_INVENTORY_UNPARSED_WARNING=false
# The report at the end reads best as YAML, and skipped steps are noise here.
export ANSIBLE_CALLBACK_RESULT_FORMAT=yaml ANSIBLE_DISPLAY_SKIPPED_HOSTS=false
# What the demo builds stays in the clone's ignored .cache, and goes when the clone goes.
exec "$repo/.venv/bin/ansible-playbook" "$repo/playbooks/demo.yml" -e "demo_work_dir=$repo/.cache/demo" "$@"

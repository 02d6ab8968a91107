#!/usr/bin/env bash
# Runs every test of the collection, as root, on this machine's real kernel:
#   sanity       ansible-test sanity --venv (offline-capable)
#   units        ansible-test units --venv: pure rules and the driver against real mounts
#   integration  ansible-test integration --venv: the modules and roles on localhost
#   build        antsibull-changelog lint, antsibull-docs lint-collection-docs, then
#                ansible-galaxy collection build + install into an empty path, and from
#                there ansible-doc on every module and role and the demo's syntax check
#   lint         ansible-lint (production profile) on roles and playbooks
#   molecule     molecule test -s default, fleet, vm (extensions/molecule)
#   leftovers    fails when a test left an overlay mount or a loop device behind
#
# Usage: scripts/test.sh                 every stage
#        scripts/test.sh units [ARGS...] one stage, ARGS passed to its command
#                                        (e.g. a test file, or -- -k name for pytest)
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if [ -z "${GDO_TEST_NAMESPACE:-}" ]; then
  bash "$repo/scripts/setup.sh" || exit 1
  # A private mount namespace: ansible-test needs the collection at
  # .../ansible_collections/graphdriver/overlay (a symlink is not enough), and a bind mount
  # made here vanishes with the run whatever happens.
  exec unshare --mount --propagation private env GDO_TEST_NAMESPACE=1 bash "${BASH_SOURCE[0]}" "$@"
fi

export HOME=${GDO_HOME:-/var/tmp/graphdriver-overlay/home}
export ANSIBLE_FORCE_COLOR=0 PY_COLORS=0
mkdir -p "$HOME"
export PATH=$repo/.venv/bin:$PATH

work=$(mktemp -d /tmp/gdo-test.XXXXXX)
collection=$work/ansible_collections/graphdriver/overlay
mkdir -p "$collection"
mount --bind "$repo" "$collection"
cleanup() {
  umount -l "$collection" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
cd "$collection" || exit 1

overlay_mounts() { awk '$9 == "overlay" { print $5 }' /proc/self/mountinfo | sort; }
loop_devices() { losetup -a 2>/dev/null | sort; }
mounts_before=$(overlay_mounts)
loops_before=$(loop_devices)

seed_get_pip() {
  # ansible-test bootstraps pip in each venv with get-pip.py from its CI-files host; seed
  # its cache with our stand-in and a pip wheel from PyPI only when that host is unreachable.
  local version cache url
  version=$(python - <<'PY'
import re, ansible_test, os
src = open(os.path.join(os.path.dirname(ansible_test.__file__), "_internal", "python_requirements.py")).read()
print(re.search(r"pip='([0-9.]+)'", src).group(1))
PY
)
  cache=$HOME/.ansible/test/cache
  [ -f "$cache/get_pip_${version//./_}.py" ] && return 0
  url="https://ci-files.testing.ansible.com/ansible-test/get-pip-$version.py"
  if python -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=10).read(1)" "$url" 2>/dev/null; then
    return 0
  fi
  echo "test: get-pip host unreachable; seeding ansible-test's cache with scripts/offline_get_pip.py and pip $version"
  mkdir -p "$cache/wheels"
  pip download -q --no-deps "pip==$version" -d "$cache/wheels" 2> >(grep -v "is ignored" >&2) || return 1
  cp "$repo/scripts/offline_get_pip.py" "$cache/get_pip_${version//./_}.py"
}

stage_sanity() { seed_get_pip && ansible-test sanity --venv --python 3.11 "$@"; }
stage_units() { seed_get_pip && ansible-test units --venv --python 3.11 "$@"; }
stage_integration() {
  if [ -z "$(ls tests/integration/targets 2>/dev/null)" ]; then
    echo "integration: no targets yet"
    return 0
  fi
  # --allow-destructive: these tests are meant for this machine, as root (role_host may load
  # the overlay kernel module).
  seed_get_pip && ansible-test integration --venv --python 3.11 --allow-destructive "$@"
}
stage_build() {
  # What ships: the changelog fragments and the docs lint clean, and the built tarball works
  # from an empty collections path, away from this checkout.
  local out="$work/build" dest="$work/installed" installed tarball
  installed=$dest/ansible_collections/graphdriver/overlay
  mkdir -p "$out" "$dest"
  antsibull-changelog lint || return 1
  antsibull-docs lint-collection-docs --plugin-docs --validate-collection-refs dependent \
    --disallow-unknown-collection-refs . || return 1
  ansible-galaxy collection build --output-path "$out" "$@" . || return 1
  tarball=$(echo "$out"/graphdriver-overlay-*.tar.gz)
  ansible-galaxy collection install --force -p "$dest" "$tarball" || return 1
  test -f "$installed/MANIFEST.json" || return 1
  if find "$installed" -path '*/tests/output' -o -name .venv | grep -q .; then
    echo "build: the tarball ships test output or a virtualenv" >&2
    return 1
  fi
  ( cd "$dest" && export ANSIBLE_COLLECTIONS_PATH=$dest ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false \
      ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_INVENTORY_UNPARSED_WARNING=false
    status=0
    for module in "$installed"/plugins/modules/*.py; do
      module=$(basename "$module" .py)
      ansible-doc "graphdriver.overlay.$module" > /dev/null || { echo "build: ansible-doc $module failed" >&2; status=1; }
    done
    for role in "$installed"/roles/*/; do
      role=$(basename "$role")
      ansible-doc -t role "graphdriver.overlay.$role" > /dev/null || { echo "build: ansible-doc -t role $role failed" >&2; status=1; }
    done
    ansible-playbook --syntax-check graphdriver.overlay.demo > /dev/null || { echo "build: the shipped demo playbook fails its syntax check" >&2; status=1; }
    # Scripts and files that shipped playbooks call beside themselves must ship too.
    while IFS=: read -r file ref; do
      ref=${ref#*\}\}/}
      [ -e "$(dirname "$file")/$ref" ] || { echo "build: $file calls $ref, which the tarball does not ship" >&2; status=1; }
    done < <(grep -roE --include='*.yml' "\{\{ *(molecule_scenario_directory|playbook_dir|role_path) *\}\}/[^ \"'{]*" "$installed")
    exit $status ) || return 1
  echo "build: $(basename "$tarball") installs into an empty path; ansible-doc reads every module and role, the demo playbook parses"
}
stage_lint() {
  local targets=()
  for dir in roles playbooks extensions/molecule; do
    [ -d "$dir" ] && [ -n "$(ls "$dir")" ] && targets+=("$dir")
  done
  # --offline keeps ansible-lint from installing this collection; it finds it here instead.
  ANSIBLE_COLLECTIONS_PATH=$work ansible-lint --profile production --offline "${targets[@]}" "$@"
}
stage_molecule() {
  # The molecule scenarios in extensions/molecule, each with converge, idempotence and a
  # testinfra verifier: default (localhost), fleet (three netns hosts over SSH), vm (a TCG VM
  # on Debian's 6.1 kernel, its image built once and cached under $GDO_VM_CACHE).
  # ARGS: scenario names, all three when none.
  local scenarios=("$@") scenario start status=0
  [ ${#scenarios[@]} -gt 0 ] || scenarios=(default fleet vm)
  if [[ " ${scenarios[*]} " == *" vm "* ]]; then
    bash "$repo/extensions/molecule/vm/image.sh" > /dev/null || return 1
  fi
  for scenario in "${scenarios[@]}"; do
    start=$SECONDS
    molecule test -s "$scenario" || status=1
    echo "molecule: $scenario $((SECONDS - start)) s"
  done
  return $status
}
stage_leftovers() {
  # Only what appeared during the run counts: mounts that vanished were not ours to keep.
  local new_mounts new_loops status=0
  new_mounts=$(comm -13 <(echo "$mounts_before") <(overlay_mounts))
  new_loops=$(comm -13 <(echo "$loops_before") <(loop_devices))
  if [ -n "$new_mounts" ]; then
    echo "leftovers: overlay mounts left behind by the tests (now unmounted):"
    echo "$new_mounts"
    echo "$new_mounts" | sort -r | xargs -r -n1 umount -l
    status=1
  fi
  if [ -n "$new_loops" ]; then
    echo "leftovers: loop devices left behind by the tests:"
    echo "$new_loops"
    status=1
  fi
  [ $status = 0 ] && echo "leftovers: none"
  return $status
}

all_stages=(sanity units integration build lint molecule leftovers)
if [ $# -gt 0 ] && [[ " ${all_stages[*]} " == *" $1 "* ]]; then
  stages=("$1")
  shift
else
  stages=("${all_stages[@]}")
fi

passed=0
failed=0
failed_names=()
for stage in "${stages[@]}"; do
  echo "=== $stage"
  start=$SECONDS
  if "stage_$stage" "$@"; then
    passed=$((passed + 1))
    echo "=== $stage: ok ($((SECONDS - start)) s)"
  else
    failed=$((failed + 1))
    failed_names+=("$stage")
    echo "=== $stage: FAILED ($((SECONDS - start)) s)"
  fi
done
[ $failed -gt 0 ] && echo "failed stages: ${failed_names[*]}"
echo "stages: $passed passed, $failed failed"
[ $failed = 0 ]

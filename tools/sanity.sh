#!/usr/bin/env bash
# make sanity: ansible-test sanity on exactly what the tarball ships, unpacked into
# <tmp>/ansible_collections/incus_access/fleet (ansible-test needs that layout, outside this
# git checkout, whose ignored build/ it would skip), plus tests/sanity/ignore-*.txt, which
# is not shipped. --venv: no container runtime here. ansible-test bootstraps pip in its
# virtualenvs with a script from ci-files.testing.ansible.com, not reachable from here: a
# private HOME (build/sanity-home, which also keeps its virtualenvs between runs) holds
# tools/get_pip_ensurepip.py in its place.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/^version: *//p' galaxy.yml)
repo=$PWD
work=$(mktemp -d "${TMPDIR:-/tmp}/incus-access-sanity.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/ansible_collections/incus_access/fleet
mkdir -p "$root/tests"
tar -xzf "dist/incus_access-fleet-$version.tar.gz" -C "$root"
cp -r tests/sanity "$root/tests/"
export HOME=$repo/build/sanity-home
pip_version=$("$repo/.venv/bin/python" -c 'from ansible_test._internal.python_requirements import PIP_VERSION as v; print(v)' 2>/dev/null || echo 24.2)
mkdir -p "$HOME/.ansible/test/cache"
cp "$repo/tools/get_pip_ensurepip.py" "$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
cd "$root"
py=$("$repo/.venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
"$repo/.venv/bin/ansible-test" sanity --venv --python "$py" "$@"

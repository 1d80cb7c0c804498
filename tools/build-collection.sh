#!/usr/bin/env bash
# make collection: dist/incus_access-fleet-<version>.tar.gz from a staged copy of the
# repository (galaxy.yml's build_ignore leaves out what users do not need) with both
# architectures' binaries under bin/ (make build has run). plugins/modules/<module> is a
# marker there instead of a 16 MiB binary per module: Ansible needs a file per module
# (and ansible-doc reads <module>.yml beside it), the action plugin runs the binary.
set -euo pipefail
cd "$(dirname "$0")/.."
STAGE=build/collection-stage
MULTI=incus-access-modules

for a in amd64 arm64; do
  [[ -s bin/linux-$a/$MULTI && -s bin/linux-$a/$MULTI.sha256 ]] || { echo "bin/linux-$a/$MULTI missing: run make build" >&2; exit 1; }
done
rm -rf "$STAGE"
mkdir -p "$STAGE" dist
rsync -a --exclude=/.git --exclude=/.venv --exclude=/build --exclude=/dist --exclude='/plugins/modules/*' ./ "$STAGE/"
mkdir -p "$STAGE/plugins/modules"
for dir in modules/*/; do
  m=$(basename "$dir")
  install -m 0644 "modules/$m/$m.yml" "$STAGE/plugins/modules/$m.yml"
  # No shebang and not executable (ansible-test's shebang rule for modules); the \001 in
  # the comment makes Ansible's _is_binary classify it as a binary module, so its stock
  # path sends the file through the action plugin's _transfer_file, which substitutes the
  # target's binary. Were it ever run by hand, /bin/sh reads it as a script: one JSON error.
  {
    printf '# Copyright (c) incus-access contributors\n'
    printf '# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)\n'
    printf '# incus_access.fleet.%s: Ansible finds the module by this file, ansible-doc reads %s.yml\n' "$m" "$m"
    printf '# beside it. The module itself is bin/linux-<arch>/%s, run by the action\n' "$MULTI"
    printf '# plugin plugins/action/%s.py. Marks this file binary for Ansible: \001\n' "$m"
    printf "printf '%%s\\\\n' '{\"failed\": true, \"msg\": \"incus_access.fleet.%s runs through its action plugin; this file is only its marker\"}'\n" "$m"
    printf 'exit 1\n'
  } >"$STAGE/plugins/modules/$m"
  chmod 0644 "$STAGE/plugins/modules/$m"
done
.venv/bin/ansible-galaxy collection build "$STAGE" --output-path dist --force

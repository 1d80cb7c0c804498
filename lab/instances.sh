#!/usr/bin/env bash
# The lab's instances: on host1 deb1 and bb1 (project default) and deb-prod (production);
# on host2 deb2 (default). Launched when missing, started when stopped.
# Usage: lab/instances.sh up
set -euo pipefail
source "$(dirname "$0")/common.sh"

# host project name image
INSTANCES="1 default deb1 debian
1 default bb1 busybox
1 production deb-prod debian
2 default deb2 debian"

ensure() {
  local n=$1 project=$2 name=$3 image=$4 status want have
  want=$(incus_on "$n" image get-property "$image" lab_version)
  status=$(incus_on "$n" list --project "$project" --format csv -c s "^$name\$" 2>/dev/null || true)
  if [[ -n $status ]]; then
    have=$(incus_on "$n" config get "$name" user.lab_image_version --project "$project")
    if [[ $have != "$want" ]]; then   # the image recipe changed: start afresh
      log "recreating $name on host$n (image $image version ${have:-?} -> $want)"
      incus_on "$n" delete --force "$name" --project "$project" </dev/null
      status=""
    fi
  fi
  case $status in
    "") log "launching $name ($image) in project $project on host$n"
        incus_on "$n" launch "$image" "$name" --project "$project" -c user.lab_image_version="$want" \
          </dev/null >/dev/null 2>&1 || die "cannot launch $name on host$n" ;;
    RUNNING) ;;
    *) incus_on "$n" start "$name" --project "$project" </dev/null ;;
  esac
}

case ${1:-up} in
  up)
    while read -r n project name image; do ensure "$n" "$project" "$name" "$image"; done <<<"$INSTANCES"
    ;;
  *) die "usage: $0 up" ;;
esac

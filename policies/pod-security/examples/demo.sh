#!/usr/bin/env bash
# The `make run` demo: pod-security on the bundled example requests, through the CLI.
set -uo pipefail
palisade=$1 policy=$2
here=$(dirname "$0")
show() {
  echo
  echo "\$ palisade run --policy pod_security.wasm $*"
  "$palisade" run --policy "$policy" "$@"
  echo "(exit code $?)"
}
show --request "$here/restricted-deployment.yaml"
show --request "$here/privileged-pod.yaml" --settings "$here/baseline.yaml"
show --request "$here/baseline-pod.yaml" --output yaml
echo
echo "\$ palisade test suite.yaml"
"$palisade" test "$here/suite.yaml"

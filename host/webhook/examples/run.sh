#!/usr/bin/env bash
# `make run`: the CLI demo, then the admission webhook on https://127.0.0.1:8443 with the
# bundled configuration and a freshly generated local certificate. Ctrl-C stops it.
set -euo pipefail
palisade=$1 policy=$2
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)

bash "$root/policies/pod-security/examples/demo.sh" "$palisade" "$policy" || true

# The proxy side: every proxy filter through the Envoy-faithful proxy-wasm host.
for filter in request-guard zero-trust rate-limit rego; do
  module="$root/target/policies/proxy-wasm/${filter//-/_}.wasm"
  [[ -f $module ]] || continue
  echo
  echo "\$ palisade run --policy ${filter//-/_}.wasm --http policies/$filter/examples/scenario.yaml"
  "$palisade" run --policy "$module" --http "$root/policies/$filter/examples/scenario.yaml" >/dev/null || true
  for scenario in "$root/policies/$filter"/examples/*/*.yaml; do
    [[ -f $scenario && $scenario != *.template.yaml && $scenario != */examples/admission/* ]] || continue
    echo
    echo "\$ palisade run --policy ${filter//-/_}.wasm --http ${scenario#"$root/"}"
    "$palisade" run --policy "$module" --http "$scenario" >/dev/null || true
  done
  echo
  echo "\$ palisade test policies/$filter/examples/suite.yaml"
  "$palisade" test "$root/policies/$filter/examples/suite.yaml" || true
done

# Admission homes of the same crates: their suites through the component runtime.
for suite in "$root"/policies/*/examples/admission/suite.yaml; do
  [[ -f $suite ]] || continue
  echo
  echo "\$ palisade test ${suite#"$root/"}"
  "$palisade" test "$suite" || true
done

# Supply chain: image-signature's suite over the example OCI layout of signed images, then
# the CLI's own check of one image, as `cosign verify` makes it.
images="$root/policies/image-signature/examples/images"
echo
echo "\$ palisade test policies/image-signature/examples/suite.yaml"
"$palisade" test "$root/policies/image-signature/examples/suite.yaml" || true
echo
echo "\$ palisade verify-image registry.example.com/team/signed:v1 --oci-dir policies/image-signature/examples/images/registry --key policies/image-signature/examples/images/keys/alpha.pub"
"$palisade" verify-image registry.example.com/team/signed:v1 --oci-dir "$images/registry" --key "$images/keys/alpha.pub" || true

# Kubewarden's home of pod-security: the same request through its waPC build (what
# Kubewarden's policy-server runs), in Palisade's waPC host.
kubewarden="$root/target/policies/kubewarden/pod_security.wasm"
if [[ -f $kubewarden ]]; then
  echo
  echo "\$ palisade run --policy target/policies/kubewarden/pod_security.wasm --request policies/pod-security/examples/privileged-pod.yaml --settings policies/pod-security/examples/baseline.yaml"
  "$palisade" run --policy "$kubewarden" --request "$root/policies/pod-security/examples/privileged-pod.yaml" \
    --settings "$root/policies/pod-security/examples/baseline.yaml" >/dev/null || true
fi

# Gatekeeper's suites (gator verify's format) for the rego policy's template library.
echo
echo "\$ palisade test policies/rego/library/..."
"$palisade" test "$root/policies/rego/library/..." || true

tls="$root/target/run/tls"
if [[ ! -f $tls/tls.crt ]]; then
  mkdir -p "$tls"
  "$palisade" cert --out "$tls" --dns localhost --ip 127.0.0.1
fi
cat <<MSG

Starting the admission webhook on https://127.0.0.1:8443 (Ctrl-C to stop). In another shell:

  curl --cacert target/run/tls/ca.crt -H 'Content-Type: application/json' \\
    --data-binary @tests/benches/pod-create-review.json \\
    https://127.0.0.1:8443/validate/pod-security

  curl --cacert target/run/tls/ca.crt https://127.0.0.1:8443/policies
  curl --cacert target/run/tls/ca.crt https://127.0.0.1:8443/metrics

MSG
exec "$palisade" serve --config "$here/palisade.yaml" --log-format text

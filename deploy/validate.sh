#!/usr/bin/env bash
# Checks the deployment files without a Docker engine or a cluster:
#  - docker-compose.yml, alone and with the TLS override
#    docker-compose.tls.yml, with `docker-compose config` (Debian's
#    docker-compose);
#  - deploy/kubernetes/*.yaml against the Kubernetes schemas, strictly
#    (kubernetes-validate, offline), and the kustomization's resource list;
#  - the TLS component deploy/kubernetes/tls rendered over them with
#    `kubectl kustomize` (kubectl comes with this machine's Google Cloud SDK;
#    skipped, saying so, where there is none): the Kubernetes objects against
#    the schemas, strictly; cert-manager's Issuer and Certificate, whose CRDs
#    kubernetes-validate has no schema for, against the cert-manager.io/v1
#    models of the PyPI package cloudcoil-models-cert-manager (generated from
#    cert-manager's CRDs; a field they do not know is an error here too), and
#    for what Bookstore needs of them (names, identity, usages, the Secret
#    each pod mounts);
#  - that every command and every AUTH_/BOOKS_/GATEWAY_/BOOKSTORE_ variable
#    the compose file and the manifests use is a binary we build and a
#    variable that binary reads (from its --help), and that every file the
#    TLS override names in its tls volume is one `bookstore generate-dev-certs`
#    writes (the init job makes them).
#   deploy/validate.sh [BIN_DIR=target/debug]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN_DIR="${1:-target/debug}"
PY=/usr/bin/python3   # Debian's python3 has PyYAML (a docker-compose dependency)
KV="${KUBERNETES_VALIDATE:-kubernetes-validate}"
# The venv's python that has cloudcoil-models-cert-manager (.ci/run installs
# it next to kubernetes-validate).
CM_PY="${CERT_MANAGER_PYTHON:-$(dirname "$(command -v "$KV")")/python}"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

echo "== docker-compose config"
docker-compose -f docker-compose.yml config -q
docker-compose -f docker-compose.yml -f docker-compose.tls.yml config -q
echo "valid: docker-compose.yml, and with docker-compose.tls.yml"

echo "== Kubernetes manifests (strict schema validation)"
manifests=$("$PY" -c 'import yaml; print(" ".join("deploy/kubernetes/" + r for r in yaml.safe_load(open("deploy/kubernetes/kustomization.yaml"))["resources"]))')
for file in $manifests; do [ -f "$file" ] || { echo "kustomization lists missing $file" >&2; exit 1; }; done
"$KV" --strict --quiet $manifests
echo "valid: $manifests"

echo "== Kubernetes with the TLS component (deploy/kubernetes/tls, cert-manager)"
rendered=""
if command -v kubectl >/dev/null; then
  # A kustomization beside the base, as an operator's own would be.
  mkdir -p "$TMP/with-tls"
  rel=$(realpath --relative-to="$TMP/with-tls" deploy/kubernetes)
  printf 'resources: [%s]\ncomponents: [%s/tls]\n' "$rel" "$rel" >"$TMP/with-tls/kustomization.yaml"
  kubectl kustomize "$TMP/with-tls" >"$TMP/with-tls.yaml"
  "$PY" - "$TMP/with-tls.yaml" "$TMP/core.yaml" "$TMP/cert-manager.yaml" <<'PYEOF'
import sys, yaml
docs = list(yaml.safe_load_all(open(sys.argv[1])))
core = [d for d in docs if not d["apiVersion"].startswith("cert-manager.io/")]
yaml.safe_dump_all(core, open(sys.argv[2], "w"))
yaml.safe_dump_all([d for d in docs if d not in core], open(sys.argv[3], "w"))
PYEOF
  "$KV" --strict --quiet "$TMP/core.yaml"
  "$CM_PY" -c 'import cloudcoil.models.cert_manager' 2>/dev/null \
    || { echo "$CM_PY has no cloudcoil-models-cert-manager (pip install it beside kubernetes-validate)" >&2; exit 1; }
  "$CM_PY" - "$TMP/with-tls.yaml" <<'PYEOF'
import sys, yaml
from cloudcoil.models.cert_manager import v1
docs = list(yaml.safe_load_all(open(sys.argv[1])))
errors = []
def unknown(given, known, where):
    """Fields of `given` the model dropped: unknown to cert-manager's schema."""
    if isinstance(given, dict):
        for key, value in given.items():
            if not isinstance(known, dict) or key not in known:
                errors.append(f"{where}.{key}: not a field of the schema")
            else:
                unknown(value, known[key], f"{where}.{key}")
    elif isinstance(given, list) and isinstance(known, list):
        for i, (a, b) in enumerate(zip(given, known)):
            unknown(a, b, f"{where}[{i}]")
models = {"Certificate": v1.Certificate, "Issuer": v1.Issuer, "ClusterIssuer": v1.ClusterIssuer}
certificates, issuers = {}, set()
for doc in docs:
    if not doc["apiVersion"].startswith("cert-manager.io/"):
        continue
    where = f"{doc['kind']}/{doc['metadata']['name']}"
    if doc["apiVersion"] != "cert-manager.io/v1" or doc["kind"] not in models:
        errors.append(f"{where}: {doc['apiVersion']} {doc['kind']} is not checked here"); continue
    try:
        model = models[doc["kind"]].model_validate(doc)
    except Exception as error:
        errors.append(f"{where}: {error}"); continue
    unknown(doc, model.model_dump(mode="json", by_alias=True, exclude_unset=True), where)
    if doc["kind"] == "Certificate":
        certificates[doc["metadata"]["name"]] = doc["spec"]
    else:
        issuers.add(doc["metadata"]["name"])
# What Bookstore needs: each service's certificate from an Issuer here, for
# its Service's name, with its identity, for serving and as a client, in the
# Secret its pods mount at /var/lib/bookstore/tls.
deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
for name, deployment in deployments.items():
    spec = certificates.get(name)
    if spec is None:
        errors.append(f"no Certificate for {name}"); continue
    if spec["issuerRef"]["name"] not in issuers:
        errors.append(f"Certificate/{name}: its issuer {spec['issuerRef']['name']} is not defined here")
    if name not in spec.get("dnsNames", []) or "localhost" not in spec.get("dnsNames", []):
        errors.append(f"Certificate/{name}: dnsNames need {name} (clients verify it) and localhost (the probes)")
    if spec.get("uris") != [f"spiffe://bookstore/{name}"]:
        errors.append(f"Certificate/{name}: uris must be [spiffe://bookstore/{name}]")
    if not {"server auth", "client auth"} <= set(spec.get("usages", [])):
        errors.append(f"Certificate/{name}: usages need server auth and client auth")
    pod = deployment["spec"]["template"]["spec"]
    mounted = {v["name"]: v.get("secret", {}).get("secretName") for v in pod.get("volumes", [])}
    tls_volume = [m["name"] for m in pod["containers"][0].get("volumeMounts", []) if m["mountPath"] == "/var/lib/bookstore/tls"]
    if not tls_volume or mounted.get(tls_volume[0]) != spec["secretName"]:
        errors.append(f"Deployment/{name}: does not mount Secret {spec['secretName']} at /var/lib/bookstore/tls")
config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
for key, value in config.items():
    if value.startswith("/var/lib/bookstore/tls/") and value.rsplit("/", 1)[1] not in ("tls.crt", "tls.key", "ca.crt"):
        errors.append(f"ConfigMap {key}: {value} is not a file cert-manager writes (tls.crt, tls.key, ca.crt)")
if errors:
    sys.exit("\n".join(errors))
print(f"valid: {len(certificates)} Certificates and {len(issuers)} Issuers (cert-manager.io/v1), one per Deployment, mounted")
PYEOF
  rendered="$TMP/with-tls.yaml"
else
  echo "SKIPPED: no kubectl here to render the component with (kustomize)"
fi

echo "== commands and variables are real"
for bin in auth-service books-service gateway bookstore; do
  "$BIN_DIR/$bin" --help > "/tmp/bookstore-help-$bin.txt"
done
for service in auth-service books-service gateway; do
  "$BIN_DIR/bookstore" "$service" --help >> /tmp/bookstore-help-bookstore.txt
done
"$BIN_DIR/bookstore" --help > /tmp/bookstore-help-commands.txt
DEV_CERTS="$TMP/dev-certs"
"$BIN_DIR/bookstore" generate-dev-certs --out "$DEV_CERTS" >/dev/null
"$PY" - "$BIN_DIR" "$DEV_CERTS" $manifests $rendered <<'PYEOF'
import os, re, sys, yaml
bin_dir, dev_certs, manifests = sys.argv[1], sys.argv[2], sys.argv[3:]
help_text = {b: open(f"/tmp/bookstore-help-{b}.txt").read() for b in ("auth-service", "books-service", "gateway", "bookstore")}
# `bookstore`'s subcommands, from the "Commands:" list of its --help.
commands_help = open("/tmp/bookstore-help-commands.txt").read().split("Commands:")[1].split("Options:")[0]
subcommands = set(re.findall(r"^  ([a-z][a-z-]*)", commands_help, re.M))
# Read by every binary without a flag: the log filter and format, and the
# OpenTelemetry SDK's standard OTEL_* variables.
known = set(re.findall(r"\benv: ([A-Z_]+)[=\]]", "".join(help_text.values()))) | {"RUST_LOG", "LOG_FORMAT", "BOOKSTORE_ADMIN_PASSWORD"}
uses = []  # (where, command, env names)
tls_files = []  # (where, path in the tls volume)
base = yaml.safe_load(open("docker-compose.yml"))["services"]
for compose_file in ("docker-compose.yml", "docker-compose.tls.yml"):
    compose = yaml.safe_load(open(compose_file))
    for name, service in compose["services"].items():
        if not base.get(name, service).get("image", "").startswith("bookstore"):
            continue  # postgres
        # An override's service may set only its environment or healthcheck.
        uses.append((f"{compose_file}:{name}", service.get("command"), list((service.get("environment") or {}).keys())))
        test = service.get("healthcheck", {}).get("test", [])
        if test[:2] == ["CMD", "bookstore"]:
            uses.append((f"{compose_file}:{name}:healthcheck", test[1:], []))
        for text in [str(v) for v in (service.get("environment") or {}).values()] + [str(t) for t in test]:
            tls_files += [(f"{compose_file}:{name}", f) for f in re.findall(r"/var/lib/bookstore/tls/([^\s\"',]+)", text)]
for path in manifests:
    for doc in yaml.safe_load_all(open(path)):
        if doc["kind"] == "ConfigMap":
            uses.append((path, None, list(doc["data"].keys())))
        if doc["kind"] == "Secret":
            uses.append((path, None, [k for k in doc.get("stringData", {}) if k.isupper()]))
        if doc["kind"] == "Deployment":
            for container in doc["spec"]["template"]["spec"]["containers"]:
                uses.append((path, container["command"], [e["name"] for e in container.get("env", [])]))
                for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                    if "exec" in container.get(probe, {}):
                        uses.append((f"{path}:{doc['metadata']['name']}:{probe}", container[probe]["exec"]["command"], []))
errors = []
def bookstore_commands(command):
    """Each `bookstore ...` a command runs: itself, or the ones in `sh -c SCRIPT`."""
    if command[:2] == ["sh", "-c"]:
        return [["bookstore", sub] for sub in re.findall(r"\bbookstore ([a-z-]+)", command[2])]
    return [command]
for where, command, names in uses:
    for run in bookstore_commands(command) if command is not None else []:
        if run[0] not in help_text:
            errors.append(f"{where}: command {run[0]!r} is not a Bookstore binary")
        elif run[0] == "bookstore" and len(run) > 1 and run[1] not in subcommands:
            errors.append(f"{where}: {run[1]!r} is not a bookstore subcommand")
    for name in names:
        if name not in known and not name.startswith("OTEL_"):
            errors.append(f"{where}: {name} is not read by any Bookstore binary")
written = set(os.listdir(dev_certs))
for where, file in tls_files:
    if file not in written:
        errors.append(f"{where}: /var/lib/bookstore/tls/{file} is not a file generate-dev-certs writes ({sorted(written)})")
if errors:
    sys.exit("\n".join(errors))
print(f"ok: {len(uses)} uses checked against {len(known)} known variables; {len(tls_files)} TLS file references")
PYEOF

#!/usr/bin/env bash
# Checks the deployment files without a Docker engine or a cluster:
#  - docker-compose.yml, alone and with the TLS override
#    docker-compose.tls.yml, with `docker-compose config` (Debian's
#    docker-compose);
#  - deploy/kubernetes/*.yaml against the Kubernetes schemas, strictly
#    (kubernetes-validate, offline), and the kustomization's resource list;
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

echo "== docker-compose config"
docker-compose -f docker-compose.yml config -q
docker-compose -f docker-compose.yml -f docker-compose.tls.yml config -q
echo "valid: docker-compose.yml, and with docker-compose.tls.yml"

echo "== Kubernetes manifests (strict schema validation)"
manifests=$("$PY" -c 'import yaml; print(" ".join("deploy/kubernetes/" + r for r in yaml.safe_load(open("deploy/kubernetes/kustomization.yaml"))["resources"]))')
for file in $manifests; do [ -f "$file" ] || { echo "kustomization lists missing $file" >&2; exit 1; }; done
"$KV" --strict --quiet $manifests
echo "valid: $manifests"

echo "== commands and variables are real"
for bin in auth-service books-service gateway bookstore; do
  "$BIN_DIR/$bin" --help > "/tmp/bookstore-help-$bin.txt"
done
for service in auth-service books-service gateway; do
  "$BIN_DIR/bookstore" "$service" --help >> /tmp/bookstore-help-bookstore.txt
done
"$BIN_DIR/bookstore" --help > /tmp/bookstore-help-commands.txt
DEV_CERTS=$(mktemp -d)
trap 'rm -rf "$DEV_CERTS"' EXIT
"$BIN_DIR/bookstore" generate-dev-certs --out "$DEV_CERTS" >/dev/null
"$PY" - "$BIN_DIR" "$DEV_CERTS" $manifests <<'PYEOF'
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

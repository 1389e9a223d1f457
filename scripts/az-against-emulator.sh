#!/usr/bin/env bash
# Signs the Azure CLI in to a running keyturn emulator, in a private Azure CLI profile, and runs az.
#
#   scripts/az-against-emulator.sh CONNECTION_FILE [az arguments...]
#
# CONNECTION_FILE is what `keyturn emulator --connection-file` wrote. The profile lives in
# ${KEYTURN_AZ_CONFIG_DIR:-<connection file without .json>.azure}; it is rebuilt when the emulator
# behind the connection file changed (new port, new secret). Your own ~/.azure is never touched.
#
# With az arguments, runs `az ARGS` in that profile:
#   scripts/az-against-emulator.sh /tmp/keyturn.json storage account list -o table
# Without, prints the exports that point the current shell's az at the emulator:
#   eval "$(scripts/az-against-emulator.sh /tmp/keyturn.json)"
set -euo pipefail

if [[ $# -lt 1 ]]; then
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
conn=$1
shift
[[ -r $conn ]] || { echo "az-against-emulator: cannot read connection file '$conn'" >&2; exit 2; }
command -v az >/dev/null || { echo "az-against-emulator: install azure-cli (apt-get install -y azure-cli)" >&2; exit 127; }

# field PATH: a value from the connection file (PATH like armEndpoint or subscriptionIds.0).
field() {
  node -e '
    const c = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const v = process.argv[2].split(".").reduce((o, k) => (o == null ? o : o[k]), c);
    if (v == null) { console.error(`connection file has no ${process.argv[2]}`); process.exit(1); }
    process.stdout.write(String(v));
  ' "$conn" "$1"
}

arm=$(field armEndpoint)
dir=${KEYTURN_AZ_CONFIG_DIR:-${conn%.json}.azure}
marker=$dir/keyturn-emulator

export AZURE_CONFIG_DIR=$dir
export REQUESTS_CA_BUNDLE
REQUESTS_CA_BUNDLE=$(field caCertFile)
export AZURE_CORE_COLLECT_TELEMETRY=no
export AZURE_CORE_ONLY_SHOW_ERRORS=true

if [[ ! -f $marker || $(cat "$marker") != "$arm" ]] || ! az account show -o none 2>/dev/null; then
  if [[ -d $dir && ! -f $marker && -n $(ls -A "$dir") ]]; then
    echo "az-against-emulator: $dir exists and is not a profile this script made; set KEYTURN_AZ_CONFIG_DIR" >&2
    exit 2
  fi
  rm -rf "$dir"
  mkdir -p "$dir"
  chmod 700 "$dir"
  # The CLI reads the cloud's endpoints from $arm/metadata/endpoints (no trailing slash: it appends the path).
  az cloud register -n KeyturnEmulator --endpoint-resource-manager "$arm" -o none
  az cloud set -n KeyturnEmulator -o none
  az login --service-principal -u "$(field clientId)" -p "$(field clientSecret)" --tenant "$(field tenantId)" -o none
  printf '%s' "$arm" >"$marker"
fi

if [[ $# -eq 0 ]]; then
  printf 'export AZURE_CONFIG_DIR=%q\n' "$AZURE_CONFIG_DIR"
  printf 'export REQUESTS_CA_BUNDLE=%q\n' "$REQUESTS_CA_BUNDLE"
  printf 'export AZURE_CORE_COLLECT_TELEMETRY=no\n'
  exit 0
fi
exec az "$@"

#!/usr/bin/env bash
# Installs everything `make test` and `make demo` need on a fresh Debian machine of this project's kind,
# and skips each step whose result is already there:
#   1. Debian packages: rabbitmq-server, prometheus (with promtool), etcd-server, openssl, and for the
#      local node containerd, runc, containernetworking-plugins, buildah, mmdebstrap, iptables, gcc;
#   2. the Python virtual environment .venv with the pinned dependencies (constraints.txt);
#   3. kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and helm, built from their Go
#      modules (tools/*/go.mod) into ~/.cache/queue-consumer-operator (minutes the first time, cached);
#   4. checkov (the configuration scanner) in .venv-scan, and the Prometheus Operator's module (its CRDs);
#   5. the node's images (devstack/image.py): a Debian base tagged as the Dockerfile's FROM, the pause
#      image, and the project's image built from the Dockerfile with buildah (rebuilt when it changed).
# The Pub/Sub emulator ships with the machine image's Google Cloud CLI and cannot be installed here.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

need_apt=()
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || need_apt+=(rabbitmq-server)
command -v prometheus >/dev/null && command -v promtool >/dev/null || need_apt+=(prometheus)
command -v etcd >/dev/null || need_apt+=(etcd-server)
command -v openssl >/dev/null || need_apt+=(openssl)
for tool in containerd runc buildah mmdebstrap iptables gcc; do
  command -v "$tool" >/dev/null || need_apt+=("$tool")
done
[ -x /usr/lib/cni/bridge ] || need_apt+=(containernetworking-plugins)
[ -f /usr/include/stdio.h ] || need_apt+=(libc6-dev)  # the pause binary is linked statically
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  # Debian starts nothing for us in a container, but stop a system node if the package did start one.
  $SUDO rabbitmqctl -q stop >/dev/null 2>&1 || true
fi

if ! command -v gcloud >/dev/null || \
   [ ! -x "$(gcloud info --format='value(installation.sdk_root)')/platform/pubsub-emulator/bin/cloud-pubsub-emulator" ]; then
  echo "bootstrap: the Cloud Pub/Sub emulator is missing. It ships with this machine image's Google Cloud CLI" >&2
  echo "           (Debian google-cloud-cli-pubsub-emulator); its apt source is disabled, so it cannot be installed." >&2
  exit 1
fi

stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  echo "bootstrap: creating .venv with the pinned Python dependencies"
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade "pip==25.3"
  .venv/bin/python -m pip install -q -c constraints.txt -e ".[dev]"
  touch "$stamp"
fi

# The configuration scanner (checkov) in a venv of its own: its pins clash with ours (tools/checkov/).
scan_stamp=.venv-scan/.installed
if [ ! -f "$scan_stamp" ] || [ tools/checkov/requirements.txt -nt "$scan_stamp" ]; then
  echo "bootstrap: creating .venv-scan with checkov (tools/checkov/requirements.txt)"
  [ -x .venv-scan/bin/python ] || "$PYTHON" -m venv .venv-scan
  .venv-scan/bin/python -m pip install -q --upgrade "pip==25.3"
  .venv-scan/bin/python -m pip install -q -r tools/checkov/requirements.txt
  touch "$scan_stamp"
fi

command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin"
.venv/bin/python -m devstack.binaries
.venv/bin/python -m devstack.prometheus_operator  # the CRDs the chart tests install (tools/prometheus-operator)
.venv/bin/python -m devstack.image
echo "bootstrap: ready"

#!/usr/bin/env bash
# Set up Bascule on a Debian 12 machine (as root) and start it with a working demo.
#
#   ./setup.sh            install everything, start the daemon and the demo
#   ./setup.sh --no-demo  install everything, start nothing
#   ./setup.sh --dev      also install the development and test tools (used by ./test.sh)
#   ./setup.sh --no-link  do not link bascule into /usr/local/bin (used by ./test.sh)
#   ./setup.sh --service  install Bascule as a systemd service (bascule.service, data in
#                         /var/lib/bascule) and start it, instead of the demo
#
# Idempotent: running it again only installs what changed.
set -euo pipefail
cd "$(dirname "$0")"

demo=1
dev=0
link=1
service=0
for arg in "$@"; do
  case "$arg" in
    --no-demo) demo=0 ;;
    --dev) dev=1 ;;
    --no-link) link=0 ;;
    --service) service=1; demo=0 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh: run me as root (Bascule manages HAProxy, nftables and addresses)" >&2
  exit 1
fi

# --- Debian packages -------------------------------------------------------------------------
# stunnel4: the STARTTLS front of type: starttls services (engines/stunnel), run by Bascule.
# keepalived: VRRP for the HA pair (engines/keepalived), run by Bascule on a paired node.
# conntrackd: a joined pair's L4 flows copied to the peer (engines/conntrackd), run by Bascule.
packages=(haproxy stunnel4 keepalived conntrackd nftables conntrack iproute2 iputils-ping python3 python3-venv python3-pip curl procps ca-certificates)
# The WUI's front-end packages come from npm (package-lock.json). Node.js from elsewhere (e.g.
# NodeSource, whose nodejs bundles npm and conflicts with Debian's npm) is used as it is.
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)
if [ "$dev" = 1 ]; then
  packages+=(wrk nginx-light tcpdump openssl)
  # nftlb: the L4 peer bench/l4.py measures Bascule against (run by the bench, never a service).
  packages+=(nftlb)
  # The ACME test CA of tests/integration/test_tls_acme.py (run in a test namespace).
  packages+=(pebble)
  # Browser tests (tests/browser): Playwright drives Debian's Chromium, never a downloaded one.
  packages+=(chromium fonts-dejavu-core)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "==> installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Bascule starts HAProxy, stunnel, keepalived and conntrackd itself: keep the packages' own services
  # from starting at install (a policy-rc.d that says no, unless the machine has one)
  no_start=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    no_start=/usr/sbin/policy-rc.d
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ -n "$no_start" ]; then rm -f "$no_start"; fi
fi
# Debian's haproxy, stunnel4, keepalived and conntrackd packages have their own services; Bascule starts
# them itself.
# nginx and nftlb (test tools only) are run by the benchmarks with their own configs, never as
# services.
for unit in haproxy stunnel4 keepalived conntrackd nginx nftlb; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled "$unit" >/dev/null 2>&1; then
    systemctl disable --now "$unit" >/dev/null 2>&1 || true
  fi
done

# --- Python environment from the lock files --------------------------------------------------
lock=requirements.lock
[ "$dev" = 1 ] && lock=requirements-dev.lock
stamp=".venv/.installed-$(sha256sum "$lock" pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -x .venv/bin/python ]; then
  echo "==> creating the virtual environment in .venv"
  python3 -m venv .venv
fi
if [ ! -e "$stamp" ]; then
  echo "==> installing Python dependencies from $lock"
  .venv/bin/python -m pip install -q --require-hashes -r "$lock"
  .venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
  rm -f .venv/.installed-*
  touch "$stamp"
fi
# --- WUI front-end packages from package-lock.json (never committed) ---------------------------
vendor=src/bascule/web/static/vendor
npm_stamp="$vendor/.installed-$(sha256sum package-lock.json | cut -c1-16)"
if [ ! -e "$npm_stamp" ]; then
  echo "==> installing the WUI's front-end packages (htmx, uPlot, Swagger UI) from package-lock.json"
  npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error
  rm -rf "$vendor"
  mkdir -p "$vendor"
  cp node_modules/htmx.org/dist/htmx.min.js "$vendor/"
  cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css "$vendor/"
  cp node_modules/htmx.org/LICENSE "$vendor/htmx.LICENSE"
  cp node_modules/uplot/LICENSE "$vendor/uPlot.LICENSE"
  # The API's interactive documentation (/api/v1/docs), served by the daemon itself.
  cp node_modules/swagger-ui-dist/swagger-ui-bundle.js node_modules/swagger-ui-dist/swagger-ui.css "$vendor/"
  cp node_modules/swagger-ui-dist/LICENSE "$vendor/swagger-ui.LICENSE"
  touch "$npm_stamp"
fi
if [ "$link" = 1 ]; then
  ln -sf "$(pwd)/.venv/bin/bascule" /usr/local/bin/bascule
fi

# --- the system service ----------------------------------------------------------------------
# deploy/systemd/bascule.service with this checkout's paths. HAProxy outlives a restart of the
# unit (KillMode=process): see docs/user-guide.md, "Running as a system service".
if [ "$service" = 1 ]; then
  unit="${BASCULE_UNIT_DIR:-/etc/systemd/system}/bascule.service"
  protect_home=yes
  case "$(pwd)/" in
    /home/*|/root/*|/run/user/*) protect_home=read-only ;;  # the code itself lives there
  esac
  echo "==> installing $unit"
  sed -e "s#@BASCULE@#$(pwd)/.venv/bin/bascule#" \
      -e "s#@DOCS@#$(pwd)/docs#" \
      -e "s#^ProtectHome=yes\$#ProtectHome=$protect_home#" \
      deploy/systemd/bascule.service > "$unit.tmp"
  chmod 0644 "$unit.tmp"
  mv "$unit.tmp" "$unit"
  if command -v systemd-analyze >/dev/null 2>&1; then
    systemd-analyze verify "$unit"
  fi
  if [ -z "${BASCULE_UNIT_DIR:-}" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable bascule.service
    # restart, not start: an upgrade restarts the daemon, which adopts the running data plane
    systemctl restart bascule.service
    echo "==> Bascule runs as bascule.service: systemctl status bascule; journalctl -u bascule"
  else
    echo "==> $unit is installed, but systemd is not the service manager here: start Bascule" \
      "with \`bascule run\`"
  fi
fi

if [ "$demo" = 1 ]; then
  echo "==> starting Bascule with the demo"
  exec .venv/bin/bascule demo
fi

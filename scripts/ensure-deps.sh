#!/usr/bin/env bash
# Installs what ElixirScope's build, demo and tests need on a fresh Debian machine
# when it is missing: Erlang/OTP and Elixir from Debian, and a Rust toolchain check.
# With --tests, also what the tests start: Chromium and Node (the UI tests, with
# their npm packages: playwright-core, pinned by its package-lock.json) and
# Prometheus (the metrics tests), all from Debian.
set -euo pipefail

tests=false
[ "${1:-}" = "--tests" ] && tests=true

need_apt=()
command -v erl >/dev/null 2>&1 || need_apt+=(erlang-nox erlang-dev)
command -v elixir >/dev/null 2>&1 || need_apt+=(elixir)
if command -v erl >/dev/null 2>&1 && ! erl -noshell -eval 'code:ensure_loaded(compile) =:= {module, compile} orelse halt(1), halt(0).' >/dev/null 2>&1; then
  need_apt+=(erlang-dev)
fi

if $tests; then
  command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
  [ -x /usr/bin/prometheus ] || need_apt+=(prometheus)
  command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
  command -v npm >/dev/null 2>&1 || need_apt+=(npm)
fi

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing from Debian: ${need_apt[*]}" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "error: need root or sudo to install ${need_apt[*]}" >&2; exit 1; }
    SUDO="sudo"
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

command -v cargo >/dev/null 2>&1 || { echo "error: cargo not found; install Rust (https://rustup.rs) and retry" >&2; exit 1; }

otp=$(erl -noshell -eval 'io:format("~s", [erlang:system_info(otp_release)]), halt().')
if [ "$otp" -lt 25 ]; then
  echo "error: Erlang/OTP $otp found; ElixirScope needs OTP 25 or newer" >&2
  exit 1
fi

if $tests; then
  ui_browser="$(dirname "$0")/../crates/elixirscope-ui/browser"
  if [ ! -d "$ui_browser/node_modules/playwright-core" ]; then
    echo "installing the UI tests' npm packages in $ui_browser" >&2
    (cd "$ui_browser" && npm ci --no-audit --no-fund --loglevel=error) || {
      echo "error: npm ci failed in $ui_browser; the UI tests need playwright-core from the npm registry" >&2
      exit 1
    }
  fi
fi

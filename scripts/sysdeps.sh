#!/usr/bin/env bash
# Installs the system packages a make target needs, only when they are missing.
#   base: Python >= 3.11 with venv (every target)
#   web:  Node.js + npm (the panel's JavaScript, fetched at build time); espeak-ng + sox
#         (ccd synthesises its IVR prompts with them) - make run
#   test: the same, and Chromium, the real browser the panel's end-to-end tests drive
#   real: baresip, the SIP phones of the real-PBX suite (make test-real)
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1; }
py=$(command -v python3.11 || command -v python3.12 || command -v python3.13 || command -v python3 || true)
if [ -z "$py" ]; then need+=(python3 python3-venv python3-dev); fi
if [ -n "$py" ] && ! "$py" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
  echo "ccd needs Python >= 3.11 (found $("$py" --version 2>&1)); install python3.11 and retry" >&2
  exit 1
fi
if [ -n "$py" ] && ! "$py" -c 'import venv, ensurepip' 2>/dev/null; then need+=(python3-venv); fi
for target in "$@"; do
  case "$target" in
    web)  have npm || need+=(nodejs npm)
          have espeak-ng || need+=(espeak-ng)
          have sox || need+=(sox) ;;
    test) have npm || need+=(nodejs npm)
          have espeak-ng || need+=(espeak-ng)
          have sox || need+=(sox)
          [ -x /usr/bin/chromium ] || need+=(chromium) ;;
    real) have baresip || need+=(baresip) ;;
  esac
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing system packages: ${need[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

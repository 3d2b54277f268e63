#!/usr/bin/env bash
# Builds the panel's browser assets: installs socket.io-client and chart.js from npm
# (versions pinned in package.json / package-lock.json) and copies the two files ccd serves
# into ccd/web/static/vendor/. The panel never loads anything from a CDN.
# Installs nodejs and npm with apt-get when they are missing (Debian/Ubuntu).
# Re-running is cheap: nothing is done when the vendored files are newer than the lock file.
set -euo pipefail
cd "$(dirname "$0")/.."
vendor=ccd/web/static/vendor
files=("$vendor/socket.io.min.js" "$vendor/chart.umd.min.js")

fresh=1
for f in "${files[@]}"; do
  if [ ! -s "$f" ] || [ package-lock.json -nt "$f" ] || [ package.json -nt "$f" ]; then fresh=0; fi
done
if [ "$fresh" = 1 ] && [ "${1:-}" != "--force" ]; then exit 0; fi

if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  echo "installing system packages: nodejs npm"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm
fi

npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
mkdir -p "$vendor"
cp node_modules/socket.io-client/dist/socket.io.min.js "$vendor/socket.io.min.js"
cp node_modules/chart.js/dist/chart.umd.min.js "$vendor/chart.umd.min.js"
# licences travel with the code
cp node_modules/socket.io-client/LICENSE "$vendor/socket.io-client.LICENSE"
cp node_modules/chart.js/LICENSE.md "$vendor/chart.js.LICENSE.md"
echo "panel assets in $vendor: socket.io-client $(node -p "require('./node_modules/socket.io-client/package.json').version"), chart.js $(node -p "require('./node_modules/chart.js/package.json').version")"

#!/usr/bin/env bash
# Installs headless Chromium and ChromeDriver (Debian packages) for the report and scorecard browser tests.
# Without root or apt-get the browser tests skip with a message saying so.
set -u
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-browser: chromium not installed and cannot apt-get here; browser tests will be skipped" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || true
if ! apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1; then
  echo "install-browser: apt-get install chromium chromium-driver failed; browser tests will be skipped" >&2
fi
exit 0

#!/usr/bin/env bash
# System packages the tests use: headless Chromium + ChromeDriver (report and scorecard browser tests) and
# PostgreSQL (the shared-database store tests start a throwaway server on 127.0.0.1).
# Without root or apt-get, or when a package cannot be installed, those tests skip with a message saying so.
set -u
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || need+=(postgresql)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-system-deps: missing ${need[*]} and cannot apt-get here; the tests that need them will skip" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || true
if ! apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1; then
  echo "install-system-deps: apt-get install ${need[*]} failed; the tests that need them will skip" >&2
fi
exit 0

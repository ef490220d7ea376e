#!/usr/bin/env bash
# Debian's Chromium and its WebDriver server, for the gesta-console browser
# tests (console/tests/browser.rs). Idempotent: does nothing when both
# `chromium` and `chromedriver` are already on the PATH. Installing needs
# root (or a password-less sudo). Without them the browser tests fail,
# saying so, unless GESTA_BROWSER_TESTS=skip.
#
# Usage:   .ci/browser.sh

set -euo pipefail

gesta_browser_log() { echo "browser.sh: $*" >&2; }

if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    gesta_browser_log "$(chromium --version 2>/dev/null | head -n 1) and chromedriver present"
else
    gesta_browser_log "installing chromium and chromium-driver from Debian packages"
    gesta_browser_sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
            gesta_browser_sudo=(sudo -n)
        else
            gesta_browser_log "chromium is not installed and this user cannot install it"
            exit 1
        fi
    fi
    "${gesta_browser_sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${gesta_browser_sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
    if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
        gesta_browser_log "the packages were installed but chromium or chromedriver is not on the PATH"
        exit 1
    fi
    gesta_browser_log "installed $(chromium --version 2>/dev/null | head -n 1)"
fi

#!/bin/sh
# What the tests need from the system: Debian's Chromium (the widget's browser tests) and CJK
# fonts (so the browser renders Chinese). Silent when both are there; installs the missing ones
# with apt-get when run as root; otherwise fails with one line saying what to install.
HINT="error: the browser tests need Chromium and CJK fonts: run 'sudo apt-get install chromium fonts-noto-cjk' (Debian/Ubuntu)"

has_chromium() { command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; }
has_cjk_fonts() { command -v fc-list >/dev/null 2>&1 && fc-list 2>/dev/null | grep -qi 'noto.*cjk'; }

missing() {
    m=""
    has_chromium || m="chromium"
    has_cjk_fonts || m="${m:+$m }fonts-noto-cjk"
    command -v fc-list >/dev/null 2>&1 || m="${m:+$m }fontconfig"
    echo "$m"
}

need=$(missing)
[ -z "$need" ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "$HINT" >&2
    exit 1
fi

echo "installing $need (apt-get) for the browser tests"
log=$(mktemp "${TMPDIR:-/tmp}/kefu-apt.XXXXXX")
# $need is a list of package names: split on purpose
# shellcheck disable=SC2086
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need; } >"$log" 2>&1; then
    tail -n 5 "$log" >&2
    echo "$HINT (apt-get failed, log: $log)" >&2
    exit 1
fi
rm -f "$log"

need=$(missing)
if [ -n "$need" ]; then
    echo "$HINT (still missing after apt-get: $need)" >&2
    exit 1
fi

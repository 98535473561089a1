#!/usr/bin/env bash
# The two Android SDK pieces Debian 12 lacks, android.jar (API 23) and the dx dexer, from Debian 11's
# libandroid-23-java and dalvik-exchange: downloaded with a private apt configuration (the machine's
# own Debian mirror, suite bullseye; nothing installed), else copied from $ANDROID_DEBS
# (default ../shared/android-debs), checked against app/SHA256SUMS, unpacked into $SDK.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
SDK="${SDK:-$HERE/../build/sdk}"
DEBS="${ANDROID_DEBS:-$HERE/../../../shared/android-debs}"
[ -f "$SDK/android.jar" ] && [ -f "$SDK/dx.jar" ] && exit 0
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/lists/partial" "$WORK/cache/archives/partial" "$WORK/debs"
MIRROR="$( (grep -shE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources || true) \
    | grep -oE 'https?://[^ ]+' | grep -v security | head -1)"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${MIRROR:-http://deb.debian.org/debian} bullseye main" > "$WORK/sources.list"
APT=(-o "Dir::Etc::SourceList=$WORK/sources.list" -o Dir::Etc::SourceParts=/nonexistent
     -o "Dir::State::Lists=$WORK/lists" -o "Dir::Cache=$WORK/cache" -o APT::Sandbox::User=root)
if ! (apt-get "${APT[@]}" update -qq && cd "$WORK/debs" && apt-get "${APT[@]}" download -qq libandroid-23-java dalvik-exchange) >/dev/null 2>&1; then
    echo "sdk.sh: bullseye not reachable, using the pinned copies in $DEBS"
    cp "$DEBS"/*.deb "$WORK/debs/"
fi
(cd "$WORK/debs" && sha256sum -c --quiet "$HERE/SHA256SUMS")
mkdir -p "$WORK/x" "$SDK"
for deb in "$WORK"/debs/*.deb; do dpkg-deb -x "$deb" "$WORK/x"; done
cp -L "$WORK/x/usr/share/java/com.android.android-23.jar" "$SDK/android.jar"
cp -L "$WORK/x/usr/share/java/com.android.dx-10.0.0.jar" "$SDK/dx.jar"
echo "sdk.sh: android.jar (API 23) and dx in $SDK"

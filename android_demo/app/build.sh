#!/usr/bin/env bash
# Build the signed demo APK without Gradle: javac (Java 8 bytecode, against android.jar API 23) -> dx ->
# aapt package (manifest + assets: the web player, its runtimes, and a bundle) -> aapt add classes.dex ->
# zipalign -> apksigner with a debug key made here once. Then apksigner verify, zipalign -c, aapt dump badging.
#
#   android_demo/app/build.sh [BUNDLE_DIR]      -> android_demo/build/stdo-player.apk
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
WEB="$HERE/../web"
BUILD="${BUILD:-$HERE/../build}"
SDK="${SDK:-$BUILD/sdk}"
export SDK
BUNDLE="${1:-}"
APK="$BUILD/stdo-player.apk"
for tool in javac java aapt zipalign apksigner keytool; do
    command -v "$tool" >/dev/null || { echo "build.sh: $tool is missing: run make android-deps" >&2; exit 2; }
done
[ -d "$WEB/node_modules/onnxruntime-web" ] || { echo "build.sh: $WEB/node_modules is missing: run make android-deps" >&2; exit 2; }
if [ -n "$BUNDLE" ] && [ ! -f "$BUNDLE/manifest.json" ]; then
    echo "build.sh: $BUNDLE is not a bundle (no manifest.json): give the folder stdo-export wrote" >&2; exit 2
fi
"$HERE/sdk.sh"
STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/classes" "$STAGE/assets/web/stdo" "$STAGE/dex"

# the web player and the runtime files it loads (not the rest of node_modules)
cp "$WEB/index.html" "$STAGE/assets/web/"
cp "$WEB"/stdo/*.js "$STAGE/assets/web/stdo/"
copy() { mkdir -p "$STAGE/assets/web/$(dirname "$1")"; cp "$WEB/$1" "$STAGE/assets/web/$1"; }
for f in onnxruntime-web/dist/ort.wasm.min.mjs onnxruntime-web/dist/ort-wasm-simd-threaded.mjs \
         onnxruntime-web/dist/ort-wasm-simd-threaded.wasm mp4box/dist/mp4box.all.mjs \
         @litertjs/core/dist/index.js @litertjs/wasm-utils/dist/index.js; do
    copy "node_modules/$f"
done
for f in "$WEB"/node_modules/@litertjs/core/wasm/*; do copy "node_modules/@litertjs/core/wasm/$(basename "$f")"; done
if [ -n "$BUNDLE" ]; then  # what the web player reads: not the torch reference nor CoreML
    cp -r "$BUNDLE" "$STAGE/assets/bundle"
    find "$STAGE/assets/bundle" \( -name '*.pt' -o -name '*.pt.update' -o -name '*.mlpackage.zip' \) -delete
fi
# the priors the player carries (what coded bundles update), beside web/ as the page expects (../priors/)
PRIORS="$HERE/../../stdo/priors"
if [ -f "$PRIORS/priors.json" ]; then
    mkdir -p "$STAGE/assets/priors"
    cp "$PRIORS/priors.json" "$STAGE/assets/priors/"
    for dir in "$PRIORS"/*/; do
        [ "$(basename "$dir")" = __pycache__ ] && continue
        mkdir -p "$STAGE/assets/priors/$(basename "$dir")"
        find "$dir" -maxdepth 1 \( -name '*.onnx' -o -name '*.tflite' \) -exec cp {} "$STAGE/assets/priors/$(basename "$dir")/" \;
    done
fi

javac -source 8 -target 8 -bootclasspath "$SDK/android.jar" -Xlint:-options -d "$STAGE/classes" \
    $(find "$HERE/src" -name '*.java')
java -cp "$SDK/dx.jar" com.android.dx.command.Main --dex --output="$STAGE/dex/classes.dex" "$STAGE/classes"
aapt package -f -M "$HERE/AndroidManifest.xml" -I "$SDK/android.jar" -A "$STAGE/assets" -0 wasm -0 tflite -0 onnx -0 mp4 \
    -F "$STAGE/unsigned.apk"
(cd "$STAGE/dex" && aapt add "$STAGE/unsigned.apk" classes.dex >/dev/null)
zipalign -f -p 4 "$STAGE/unsigned.apk" "$STAGE/aligned.apk"
mkdir -p "$BUILD"
KEY="$BUILD/debug.keystore"
if [ ! -f "$KEY" ]; then
    keytool -genkeypair -keystore "$KEY" -storepass android -keypass android -alias stdo-debug -keyalg RSA \
        -keysize 2048 -validity 10000 -dname "CN=stdo debug" >/dev/null
fi
apksigner sign --ks "$KEY" --ks-pass pass:android --key-pass pass:android --out "$APK.tmp" "$STAGE/aligned.apk"
mv "$APK.tmp" "$APK"
rm -f "$APK.tmp.idsig" "$APK.idsig"
apksigner verify "$APK"
zipalign -c 4 "$APK"
aapt dump badging "$APK" | head -3
echo "build.sh: $APK ($(stat -c %s "$APK") bytes)"

#!/usr/bin/env bash
# Build the signed demo APK without Gradle: javac (Java 8 bytecode, against android.jar API 23) -> dx ->
# aapt package (manifest + assets: the web player, its runtimes, and a bundle) -> aapt add classes.dex ->
# zipalign -> apksigner with a debug key made here once. Then apksigner verify, zipalign -c, aapt dump badging.
#
#   android_demo/app/build.sh [BUNDLE_DIR]      -> android_demo/build/stdo-player.apk
#
# One variant per APK, as a user downloads it: VARIANT=RUNTIME-PRECISION (onnxruntime-int8, litert-fp32,
# webgpu-fp32, ...)
# carries that runtime's WebAssembly and only the bundle's and priors' model files of that format and precision
# (the page offers only it: web/variant.json). Default: the variant the manifest recommends where a WebView runs it,
# else ONNX Runtime Web int8 when exported, else fp32, else LiteRT.js; onnxruntime with no bundle; VARIANT=all
# carries everything.
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
if [ -z "${VARIANT:-}" ]; then
    VARIANT=onnxruntime
    if [ -n "$BUNDLE" ]; then
        VARIANT="$(python3 - "$BUNDLE/manifest.json" <<'PY'
import json, sys
manifest = json.load(open(sys.argv[1]))
files = {(f["format"], f["precision"]) for m in manifest["models"] for f in m["files"]}
runtime = {"onnx": "onnxruntime", "tflite": "litert"}  # what a WebView runs
named = manifest.get("recommended") or {}
order = ((named.get("format"), named.get("precision")), ("onnx", "int8"), ("onnx", "fp32"), ("tflite", "int8"),
         ("tflite", "fp32"))
print(next((f"{runtime[f]}-{p}" for f, p in order if f in runtime and (f, p) in files), "onnxruntime"))
PY
)"
    fi
fi
RUNTIME="${VARIANT%%-*}"
PRECISION="$([ "$VARIANT" = "${VARIANT#*-}" ] && echo "" || echo "${VARIANT#*-}")"
case "$RUNTIME" in
    onnxruntime|webgpu) FORMAT=onnx ;; litert) FORMAT=tflite ;; all) FORMAT="" ;;
    *) echo "build.sh: VARIANT=$VARIANT is not RUNTIME-PRECISION: use onnxruntime-int8, litert-fp32, webgpu-fp32," \
            "... or all" >&2; exit 2 ;;
esac
case "$PRECISION" in
    ""|fp32|fp16|int8) ;;
    *) echo "build.sh: VARIANT=$VARIANT: the precision is one of fp32, fp16, int8" >&2; exit 2 ;;
esac
"$HERE/sdk.sh"
STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/classes" "$STAGE/assets/web/stdo" "$STAGE/dex"

# the web player and the runtime files it loads (not the rest of node_modules)
cp "$WEB/index.html" "$STAGE/assets/web/"
cp "$WEB"/stdo/*.js "$STAGE/assets/web/stdo/"
copy() { mkdir -p "$STAGE/assets/web/$(dirname "$1")"; cp "$WEB/$1" "$STAGE/assets/web/$1"; }
# (the page imports both runtimes' small JS modules; only the chosen runtime's WebAssembly is carried)
for f in onnxruntime-web/dist/ort.wasm.min.mjs onnxruntime-web/dist/ort-wasm-simd-threaded.mjs \
         @litertjs/core/dist/index.js @litertjs/wasm-utils/dist/index.js; do
    copy "node_modules/$f"
done
# mp4box.all.mjs imports chunks beside it (rolldown-runtime-*.mjs, styp-*.mjs): every module of its dist
for f in "$WEB"/node_modules/mp4box/dist/*.mjs; do copy "node_modules/mp4box/dist/$(basename "$f")"; done
if [ "$RUNTIME" = onnxruntime ] || [ "$RUNTIME" = all ]; then
    copy node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.wasm
fi
if [ "$RUNTIME" = webgpu ] || [ "$RUNTIME" = all ]; then  # ONNX Runtime Web's WebGPU build, loaded when chosen
    for f in ort.webgpu.min.mjs ort-wasm-simd-threaded.jsep.mjs ort-wasm-simd-threaded.jsep.wasm; do
        copy "node_modules/onnxruntime-web/dist/$f"
    done
fi
if [ "$RUNTIME" = litert ] || [ "$RUNTIME" = all ]; then
    for f in "$WEB"/node_modules/@litertjs/core/wasm/*; do copy "node_modules/@litertjs/core/wasm/$(basename "$f")"; done
fi
if [ "$RUNTIME" != all ]; then
    printf '{"backend": "%s", "precision": %s}\n' "$RUNTIME" \
        "$([ -n "$PRECISION" ] && echo "\"$PRECISION\"" || echo null)" > "$STAGE/assets/web/variant.json"
fi
# a model file of the variant: its format, and its precision (fp32 files have no precision tag in their name)
of_variant() {
    local name; name="$(basename "$1")"
    [ "$RUNTIME" = all ] && return 0
    case "$name" in *."$FORMAT"|*."$FORMAT".update) ;; *) return 1 ;; esac
    case "$PRECISION" in
        "") return 0 ;;
        fp32) case "$name" in *_int8*|*_fp16*) return 1 ;; esac ;;
        *) case "$name" in *_"$PRECISION"*) ;; *) return 1 ;; esac ;;
    esac
}
if [ -n "$BUNDLE" ]; then  # what the web player reads: not the torch reference nor CoreML, only the variant's models
    cp -r "$BUNDLE" "$STAGE/assets/bundle"
    find "$STAGE/assets/bundle" \( -name '*.pt' -o -name '*.pt.update' -o -name '*.mlpackage.zip' \) -delete
    for f in "$STAGE"/assets/bundle/models/*; do
        if [ -e "$f" ] && ! of_variant "$f"; then rm "$f"; fi
    done
    if [ -z "$(ls -A "$STAGE/assets/bundle/models" 2>/dev/null)" ]; then
        echo "build.sh: $BUNDLE has no model files for VARIANT=$VARIANT: export them, or choose another VARIANT" >&2
        exit 2
    fi
fi
# the priors the player carries (what coded bundles update), beside web/ as the page expects (../priors/)
PRIORS="$HERE/../../stdo/priors"
if [ -f "$PRIORS/priors.json" ]; then
    mkdir -p "$STAGE/assets/priors"
    cp "$PRIORS/priors.json" "$STAGE/assets/priors/"
    for dir in "$PRIORS"/*/; do
        [ "$(basename "$dir")" = __pycache__ ] && continue
        mkdir -p "$STAGE/assets/priors/$(basename "$dir")"
        for f in "$dir"*.onnx "$dir"*.tflite; do
            if [ -e "$f" ] && of_variant "$f"; then cp "$f" "$STAGE/assets/priors/$(basename "$dir")/"; fi
        done
    done
fi

javac -source 8 -target 8 -bootclasspath "$SDK/android.jar" -Xlint:-options -d "$STAGE/classes" \
    $(find "$HERE/src" -name '*.java')
java -cp "$SDK/dx.jar" com.android.dx.command.Main --dex --output="$STAGE/dex/classes.dex" "$STAGE/classes"
aapt package -f -M "$HERE/AndroidManifest.xml" -I "$SDK/android.jar" -A "$STAGE/assets" -0 tflite -0 onnx -0 mp4 \
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
echo "build.sh: $APK ($(stat -c %s "$APK") bytes, VARIANT=$VARIANT)"

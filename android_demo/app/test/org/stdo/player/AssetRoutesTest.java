package org.stdo.player;

/** Host-JVM tests of AssetRoutes (no JUnit needed): java -cp classes org.stdo.player.AssetRoutesTest. */
public final class AssetRoutesTest {
    private static int failures = 0;

    private static void check(boolean ok, String what) {
        if (!ok) {
            failures++;
            System.out.println("FAIL " + what);
        }
    }

    public static void main(String[] args) {
        String h = AssetRoutes.HOST;
        AssetRoutes.Route page = AssetRoutes.route("https", h, "/web/index.html");
        check(page != null && !page.picked && page.path.equals("web/index.html") && page.mimeType.equals("text/html"), "page");
        AssetRoutes.Route wasm = AssetRoutes.route("https", h, "/web/node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.wasm");
        check(wasm != null && wasm.mimeType.equals("application/wasm"), "wasm mime");
        check(AssetRoutes.route("https", h, "/web/stdo/app.js").mimeType.equals("text/javascript"), "module mime");
        check(AssetRoutes.route("https", h, "/web/x.mjs").mimeType.equals("text/javascript"), "mjs mime");
        AssetRoutes.Route model = AssetRoutes.route("https", h, "/bundle/models/model0_int8.onnx");
        check(model != null && model.path.equals("bundle/models/model0_int8.onnx")
            && model.mimeType.equals("application/octet-stream"), "bundle file");
        AssetRoutes.Route picked = AssetRoutes.route("https", h, "/picked/manifest.json");
        check(picked != null && picked.picked && picked.path.equals("manifest.json")
            && picked.mimeType.equals("application/json"), "picked file");
        check(AssetRoutes.route("https", h, "/web/../secret") == null, "dot-dot refused");
        check(AssetRoutes.route("https", h, "/bundle/./x") == null, "dot refused");
        check(AssetRoutes.route("https", h, "/bundle//x") == null, "empty segment refused");
        check(AssetRoutes.route("https", h, "/web/a\\b") == null, "backslash refused");
        check(AssetRoutes.route("https", h, "/other/x") == null, "unknown root refused");
        check(AssetRoutes.route("http", h, "/web/index.html") == null, "plain http refused");
        check(AssetRoutes.route("https", "example.com", "/web/index.html") == null, "other host refused");
        check(AssetRoutes.route("https", h, "/") == null && AssetRoutes.route("https", h, null) == null, "no path");
        check(AssetRoutes.headers().get("Cross-Origin-Embedder-Policy").equals("require-corp")
            && AssetRoutes.headers().get("Cross-Origin-Opener-Policy").equals("same-origin"), "isolation headers");
        if (failures > 0) {
            System.out.println(failures + " failed");
            System.exit(1);
        }
        System.out.println("AssetRoutesTest: all passed");
    }
}

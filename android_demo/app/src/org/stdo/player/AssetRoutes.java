package org.stdo.player;

import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * Which file answers a request to the app's own origin, https://appassets.androidplatform.net/,
 * and with which headers. Plain Java (no Android classes), so it is unit-tested on the host JVM.
 *
 * <p>/web/... is the web player in the APK's assets (assets/web/...), /bundle/... the bundle packed
 * into the APK (assets/bundle/...), /picked/... a file of the folder the user picked. Anything
 * else, and any path with an empty, "." or ".." segment, a backslash or a NUL, is refused.
 */
public final class AssetRoutes {
    public static final String HOST = "appassets.androidplatform.net";
    public static final String ORIGIN = "https://" + HOST + "/";
    public static final String START_PAGE = ORIGIN + "web/index.html";

    /** Where a request goes: an asset path, or a path inside the picked folder. */
    public static final class Route {
        public final boolean picked;
        public final String path;
        public final String mimeType;

        Route(boolean picked, String path, String mimeType) {
            this.picked = picked;
            this.path = path;
            this.mimeType = mimeType;
        }
    }

    private AssetRoutes() {
    }

    /** The route of a URL on the app's origin, or null when it is not one the app serves. */
    public static Route route(String scheme, String host, String path) {
        if (!"https".equals(scheme) || !HOST.equals(host) || path == null || !path.startsWith("/")) {
            return null;
        }
        String rel = path.substring(1);
        if (rel.isEmpty() || rel.indexOf('\\') >= 0 || rel.indexOf('\0') >= 0) {
            return null;
        }
        for (String segment : rel.split("/", -1)) {
            if (segment.isEmpty() || segment.equals(".") || segment.equals("..")) {
                return null;
            }
        }
        String mime = mimeType(rel);
        if (rel.startsWith("web/") || rel.startsWith("bundle/")) {
            return new Route(false, rel, mime);
        }
        if (rel.startsWith("picked/")) {
            return new Route(true, rel.substring("picked/".length()), mime);
        }
        return null;
    }

    /** The MIME type a browser needs for each file the player loads (modules and WASM are strict). */
    public static String mimeType(String path) {
        String name = path.toLowerCase(Locale.ROOT);
        if (name.endsWith(".html")) return "text/html";
        if (name.endsWith(".js") || name.endsWith(".mjs")) return "text/javascript";
        if (name.endsWith(".wasm")) return "application/wasm";
        if (name.endsWith(".json")) return "application/json";
        if (name.endsWith(".mp4")) return "video/mp4";
        if (name.endsWith(".css")) return "text/css";
        return "application/octet-stream";
    }

    /** Response headers: cross-origin isolation (WASM threads where the WebView honours it), no caching. */
    public static Map<String, String> headers() {
        Map<String, String> h = new LinkedHashMap<>();
        h.put("Cross-Origin-Opener-Policy", "same-origin");
        h.put("Cross-Origin-Embedder-Policy", "require-corp");
        h.put("Cache-Control", "no-store");
        return h;
    }
}

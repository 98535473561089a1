package org.stdo.player;

import android.app.Activity;
import android.content.Intent;
import android.net.Uri;
import android.os.Bundle;
import android.provider.DocumentsContract;
import android.view.KeyEvent;
import android.webkit.WebResourceRequest;
import android.webkit.WebResourceResponse;
import android.webkit.WebSettings;
import android.webkit.WebView;
import android.webkit.WebViewClient;

import java.io.IOException;
import java.io.InputStream;

/**
 * A WebView around the web player: the player and a bundle are served from the APK's assets under
 * https://appassets.androidplatform.net/ (file:// pages cannot load ES modules), and a bundle
 * folder the user picks (volume down key, or the page's own link) under /picked/.
 */
public class MainActivity extends Activity {
    private static final int PICK_FOLDER = 1;
    private WebView web;
    private Uri pickedTree;

    @Override
    protected void onCreate(Bundle state) {
        super.onCreate(state);
        web = new WebView(this);
        WebSettings settings = web.getSettings();
        settings.setJavaScriptEnabled(true);
        settings.setAllowFileAccess(false);
        settings.setAllowContentAccess(false);
        settings.setMediaPlaybackRequiresUserGesture(false);
        web.setWebViewClient(new WebViewClient() {
            @Override
            public WebResourceResponse shouldInterceptRequest(WebView view, WebResourceRequest request) {
                return serve(request.getUrl());
            }
        });
        setContentView(web);
        String bundle = getIntent().getStringExtra("bundle");
        web.loadUrl(AssetRoutes.START_PAGE + (bundle == null ? "" : "?bundle=" + Uri.encode(bundle)));
    }

    private WebResourceResponse serve(Uri url) {
        AssetRoutes.Route route = AssetRoutes.route(url.getScheme(), url.getHost(), url.getPath());
        if (route == null) {
            return null;
        }
        try {
            InputStream in = route.picked ? openPicked(route.path) : getAssets().open(route.path);
            return new WebResourceResponse(route.mimeType, null, 200, "OK", AssetRoutes.headers(), in);
        } catch (IOException | RuntimeException e) {
            return new WebResourceResponse("text/plain", "utf-8", 404, "Not Found", AssetRoutes.headers(), null);
        }
    }

    private InputStream openPicked(String path) throws IOException {
        if (pickedTree == null) {
            throw new IOException("no folder picked");
        }
        String root = DocumentsContract.getTreeDocumentId(pickedTree);
        Uri document = DocumentsContract.buildDocumentUriUsingTree(pickedTree, root + "/" + path);
        InputStream in = getContentResolver().openInputStream(document);
        if (in == null) {
            throw new IOException("cannot open " + path);
        }
        return in;
    }

    @Override
    public boolean onKeyDown(int keyCode, KeyEvent event) {
        if (keyCode == KeyEvent.KEYCODE_VOLUME_DOWN) {
            startActivityForResult(new Intent(Intent.ACTION_OPEN_DOCUMENT_TREE), PICK_FOLDER);
            return true;
        }
        if (keyCode == KeyEvent.KEYCODE_BACK && web.canGoBack()) {
            web.goBack();
            return true;
        }
        return super.onKeyDown(keyCode, event);
    }

    @Override
    protected void onActivityResult(int requestCode, int resultCode, Intent data) {
        if (requestCode == PICK_FOLDER && resultCode == RESULT_OK && data != null && data.getData() != null) {
            pickedTree = data.getData();
            getContentResolver().takePersistableUriPermission(pickedTree, Intent.FLAG_GRANT_READ_URI_PERMISSION);
            web.loadUrl(AssetRoutes.START_PAGE + "?bundle=/picked/");
        }
    }
}

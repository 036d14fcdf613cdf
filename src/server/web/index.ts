// The web chat page served at `/`: plain static files (./static, no build step) read once and
// held in memory. The server mounts them with `findWebAsset(path)` or `handleWebRequest(req, res)`.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface WebAsset {
  /** URL path, e.g. `/` or `/app.js`. */
  path: string;
  contentType: string;
  body: Buffer;
  /** Strong ETag of the body, quoted. */
  etag: string;
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

// The static files sit next to this module in the source tree; tsc does not copy them into dist/,
// so from dist/src/server/web we look back at src/server/web/static.
const STATIC_DIRS = [new URL('./static/', import.meta.url), new URL('../../../../src/server/web/static/', import.meta.url)];

let cache: WebAsset[] | undefined;

/** All page assets; `/` is index.html. Throws if the static folder is missing from the install. */
export function webAssets(): WebAsset[] {
  if (cache) return cache;
  const dir = STATIC_DIRS.map((u) => fileURLToPath(u)).find((d) => existsSync(d + 'index.html'));
  if (!dir) throw new Error('web page files not found (expected src/server/web/static/index.html)');
  cache = readdirSync(dir)
    .filter((f) => CONTENT_TYPES[extname(f)])
    .sort()
    .map((f) => {
      const body = readFileSync(dir + f);
      return {
        path: f === 'index.html' ? '/' : `/${f}`,
        contentType: CONTENT_TYPES[extname(f)]!,
        body,
        etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 16)}"`,
      };
    });
  return cache;
}

/** The asset for a request path (query ignored; `/index.html` = `/`), or undefined. */
export function findWebAsset(urlPath: string): WebAsset | undefined {
  let path = urlPath.split('?')[0]!;
  if (path === '/index.html') path = '/';
  return webAssets().find((a) => a.path === path);
}

/**
 * Answers GET/HEAD for a page asset on a node:http response; returns false (having written
 * nothing) when the path is not one, so the caller goes on routing.
 */
export function handleWebRequest(req: IncomingMessage, res: ServerResponse): boolean {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  const asset = findWebAsset(req.url ?? '/');
  if (!asset) return false;
  const headers = {
    'content-type': asset.contentType,
    etag: asset.etag,
    'cache-control': 'no-cache',
    // The page talks only to its own origin (no external network at run time).
    'content-security-policy': "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'",
    'x-content-type-options': 'nosniff',
  };
  if (req.headers['if-none-match'] === asset.etag) {
    res.writeHead(304, headers);
    res.end();
    return true;
  }
  res.writeHead(200, { ...headers, 'content-length': asset.body.length });
  res.end(req.method === 'HEAD' ? undefined : asset.body);
  return true;
}

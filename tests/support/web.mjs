// What the Node test harnesses share (tests/browser, tests/realmedia, clients/js/test): client
// tokens and a static file server for pages and the client library. No dependencies.

import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, join, normalize } from 'node:path';

/** An HS256 client token (PROTOCOL.md §7.1: sub, space, exp; iat ignored by the router). */
export function mintToken(secret, user, space, ttlSeconds = 3600) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub: user, space, iat: now, exp: now + ttlSeconds })}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

const TYPES = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.html': 'text/html' };

/**
 * Serves files on 127.0.0.1 (a free port): `roots` maps a URL prefix ending in "/" to a folder, or
 * an exact path to one file. Nothing outside those is served. Resolves with {server, origin}.
 */
export async function serveStatic(roots) {
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    for (const [prefix, root] of Object.entries(roots)) {
      const folder = prefix.endsWith('/');
      if (folder ? !path.startsWith(prefix) : path !== prefix) continue;
      const file = folder ? normalize(join(root, path.slice(prefix.length))) : root;
      if (!file.startsWith(root)) break;
      try {
        const body = readFileSync(file);
        res.writeHead(200, { 'content-type': TYPES[extname(file)] || 'application/octet-stream' });
        return res.end(body);
      } catch {
        break;
      }
    }
    res.writeHead(404).end();
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { server, origin: `http://127.0.0.1:${server.address().port}` };
}

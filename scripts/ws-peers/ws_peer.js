#!/usr/bin/env node
// A real WebSocket peer for ringwork's interop tests: Node's `ws` library.
//
//   node ws_peer.js client URL [--deflate] [--sizes 1,125,...]   echo check against a server
//   node ws_peer.js server [--deflate]                            echo server; prints "port N"
//
// The client sends text and binary messages of each size (whole, and fragmented with
// `fin: false`), checks every echo byte for byte, pings, then closes with 1000; it prints
// one "ok ..." line and exits 0, or prints what went wrong and exits 1.
'use strict';
const crypto = require('crypto');
const { WebSocket, WebSocketServer } = require('ws');

const args = process.argv.slice(2);
const deflate = args.includes('--deflate');
let sizes = [0, 1, 125, 126, 65535, 65536, 1 << 20, 16 << 20];
if (args.includes('--sizes')) {
  sizes = args[args.indexOf('--sizes') + 1].split(',').map(Number);
}

function fail(message) {
  console.log(`FAIL ${message}`);
  process.exit(1);
}

function payloads() {
  const out = [];
  for (const size of sizes) {
    const text = Buffer.from('é€a'.repeat(Math.floor(size / 6) + 1)).subarray(0, size)
      .toString('utf8').replace(/\uFFFD+$/, '');
    out.push(text);
    out.push(crypto.randomBytes(size));
  }
  return out;
}

async function client(url) {
  const ws = new WebSocket(url, { perMessageDeflate: deflate, maxPayload: 0 });
  const inbox = [];
  let waiter = null;
  ws.on('message', (data, isBinary) => {
    inbox.push({ data, isBinary });
    if (waiter) { const w = waiter; waiter = null; w(); }
  });
  ws.on('error', (e) => fail(`error: ${e.message}`));
  await new Promise((resolve) => ws.once('open', resolve));
  const extensions = ws.extensions;
  if (deflate && !extensions.includes('permessage-deflate')) fail('deflate not negotiated');
  const next = () => new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('echo timed out')), 60000);
    const take = () => { clearTimeout(timer); resolve(inbox.shift()); };
    if (inbox.length) take(); else waiter = take;
  });
  let count = 0;
  for (const message of payloads()) {
    const binary = Buffer.isBuffer(message);
    const bytes = binary ? message : Buffer.from(message);
    // Whole.
    ws.send(message, { binary });
    let echo = await next();
    if (echo.isBinary !== binary || !echo.data.equals(bytes)) fail(`echo of ${bytes.length} differs`);
    count++;
    // Fragmented: two frames.
    if (bytes.length >= 2) {
      const half = Math.floor(bytes.length / 2);
      ws.send(bytes.subarray(0, half), { binary, fin: false });
      ws.send(bytes.subarray(half), { binary, fin: true });
      echo = await next();
      if (echo.isBinary !== binary || !echo.data.equals(bytes)) fail(`fragmented echo of ${bytes.length} differs`);
      count++;
    }
  }
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('pong timed out')), 20000);
    ws.once('pong', (data) => { clearTimeout(timer); resolve(data); });
    ws.ping(Buffer.from('ringwork'));
  });
  const code = await new Promise((resolve) => {
    ws.once('close', (code) => resolve(code));
    ws.close(1000, 'done');
  });
  if (code !== 1000) fail(`close code ${code}`);
  console.log(`ok ${count} messages extensions=${JSON.stringify(extensions)}`);
}

function server() {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: Number(process.env.WS_PORT || 0), perMessageDeflate: deflate, maxPayload: 0 }, () => {
    console.log(`port ${wss.address().port}`);
  });
  wss.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
  // Until stdin closes (the test ends).
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}

if (args[0] === 'client') {
  client(args[1]).catch((e) => fail(e.message));
} else if (args[0] === 'server') {
  server();
} else {
  console.error('usage: ws_peer.js client URL [--deflate] | server [--deflate]');
  process.exit(2);
}

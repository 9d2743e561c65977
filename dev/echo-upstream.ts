/**
 * A stand-in for the app behind Envoy: answers HTTP/1.1 and HTTP/2 (including gRPC) on one
 * cleartext port and records the headers of every request it receives, so tests can assert what
 * the sidecar added or removed. It is the app, not a fake of anything the sidecar talks to.
 */
import { createServer as createHttp1Server } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import { createServer as createHttp2Server } from 'node:http2';
import { connect, createServer as createNetServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0');

interface ReceivedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
}

export interface EchoUpstream {
  readonly port: number;
  readonly received: ReceivedRequest[];
  close(): Promise<void>;
}

/** An empty protobuf message in gRPC framing: not compressed, length 0. */
const EMPTY_GRPC_MESSAGE = Buffer.alloc(5);

export async function startEchoUpstream(port = 0): Promise<EchoUpstream> {
  const received: ReceivedRequest[] = [];
  const http1 = createHttp1Server((request, response) => {
    received.push({ method: request.method ?? '', path: request.url ?? '', headers: request.headers });
    request.resume();
    request.on('end', () => {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ path: request.url, headers: request.headers }));
    });
  });
  const http2 = createHttp2Server();
  http2.on('stream', (stream, headers) => {
    const path = String(headers[':path'] ?? '');
    received.push({ method: String(headers[':method'] ?? ''), path, headers: headers as IncomingHttpHeaders });
    stream.resume();
    stream.on('end', () => {
      if (String(headers['content-type'] ?? '').startsWith('application/grpc')) {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'x-seen-subject': String(headers['x-jwtauth-subject'] ?? '') }));
        stream.end(EMPTY_GRPC_MESSAGE);
      } else {
        stream.respond({ ':status': 200, 'content-type': 'application/json' });
        stream.end(JSON.stringify({ path, headers }));
      }
    });
  });
  // Node cannot serve HTTP/1.1 and cleartext HTTP/2 on one port (its HTTP/2 session reads the
  // socket's native handle, so sniffed bytes cannot be pushed back). Each protocol gets an
  // internal port, and the public port sniffs the first bytes and splices the TCP stream.
  await Promise.all([
    new Promise<void>((resolve) => http1.listen(0, '127.0.0.1', resolve)),
    new Promise<void>((resolve) => http2.listen(0, '127.0.0.1', resolve)),
  ]);
  const internalPort = (target: { address(): AddressInfo | string | null }) => (target.address() as AddressInfo).port;
  const sockets = new Set<Socket>();
  const track = (socket: Socket): void => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
  };
  const server = createNetServer((socket) => {
    track(socket);
    socket.once('data', (first) => {
      const isH2 = first.subarray(0, H2_PREFACE.length).equals(H2_PREFACE);
      const inner = connect(internalPort(isH2 ? http2 : http1), '127.0.0.1');
      track(inner);
      inner.write(first);
      socket.pipe(inner);
      inner.pipe(socket);
      inner.once('close', () => socket.destroy());
      socket.once('close', () => inner.destroy());
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        http2.close();
        http1.close();
        server.close(() => resolve());
      }),
  };
}

/**
 * An experiment for the transport question of issue #16: an ext_authz "server" on node:http2
 * alone, answering every Check with the same pre-encoded OK without decoding it (no grpc-js). Set
 * against `floor_grpcjs` (grpc-js over the same node:http2) and `floor_go`, it says how much of
 * the floor is grpc-js's own call machinery, and so what a lean transport could save at most.
 * Usage: node dist/bench/null-authorizer-http2.js <port>; prints "listening <port>" when ready.
 */
import { createServer, constants } from 'node:http2';
import type { AddressInfo } from 'node:net';

// CheckResponse { status: { code: 0 } }: field 1 (status), an empty google.rpc.Status; framed.
const OK_MESSAGE = Buffer.from([0x0a, 0x00]);
const OK_FRAME = Buffer.concat([Buffer.from([0, 0, 0, 0, OK_MESSAGE.length]), OK_MESSAGE]);
const RESPONSE_HEADERS = { [constants.HTTP2_HEADER_STATUS]: 200, [constants.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc' };
const OK_TRAILERS = { 'grpc-status': '0' };

const server = createServer();
server.on('stream', (stream) => {
  stream.on('data', () => undefined);
  stream.on('end', () => {
    stream.respond(RESPONSE_HEADERS, { waitForTrailers: true });
    stream.once('wantTrailers', () => stream.sendTrailers(OK_TRAILERS));
    stream.end(OK_FRAME);
  });
  stream.on('error', () => undefined);
});
server.listen(Number(process.argv[2] ?? '0'), '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`);
});
process.once('SIGTERM', () => server.close(() => process.exit(0)));

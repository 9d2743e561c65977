/**
 * The transport floor for the sidecar: its own gRPC listener (src/envoy/grpc-server.ts: node:http2,
 * the same socket handling, CheckRequest decoding and response encoding) answering every Check
 * with OK without looking at it. What the `floor_node` scenario adds over bare Envoy is the
 * ext_authz round trip through Envoy and node:http2; what the sidecar adds over this floor is its
 * decision.
 * Usage: node dist/bench/null-authorizer.js <port>; prints "listening <port>" when ready.
 */
import { startGrpcListener } from '../src/envoy/grpc-server.js';
import type { CheckHandler } from '../src/envoy/authorization-service.js';
import { frameCheckResponse } from '../src/envoy/answer-encoder.js';

// Encoded once: the floor answers with the same bytes every time.
const OK = frameCheckResponse({ status: { code: 0 }, ok_response: {} });
const allowEverything: CheckHandler = (_request, _metadata, respond) => respond(OK);

const listener = await startGrpcListener(`127.0.0.1:${process.argv[2] ?? '0'}`, allowEverything);
listener.setServing(true);
process.stdout.write(`listening ${listener.port}\n`);
process.once('SIGTERM', () => void listener.shutdown(1000).then(() => process.exit(0)));

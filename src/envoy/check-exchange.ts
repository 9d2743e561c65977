/**
 * One Check from bytes to bytes: the CheckRequest message decoded and handed to the Check handler,
 * which answers with the framed CheckResponse (answer-encoder.ts). The listener (grpc-server.ts) writes what this gives it; the
 * in-process harness (dev/in-process-sidecar.ts) measures it without a socket.
 */
import type { IncomingHttpHeaders } from 'node:http2';
import type { CheckHandler } from './authorization-service.js';
import { decodeCheckRequest } from './check-request-decoder.js';
import type { CheckRequestView } from './check-request-decoder.js';
import { status as GrpcStatus } from '@grpc/grpc-js';

/** `answer` gets the framed CheckResponse; `refuse` a gRPC status when the message does not decode. */
export type CheckExchange = (message: Buffer, metadata: IncomingHttpHeaders, answer: (framed: Buffer) => void, refuse: (status: GrpcStatus, reason: string) => void) => void;

export function createCheckExchange(check: CheckHandler): CheckExchange {
  return (message, metadata, answer, refuse) => {
    let request: CheckRequestView;
    try {
      request = decodeCheckRequest(message);
    } catch {
      refuse(GrpcStatus.INTERNAL, 'the CheckRequest does not decode');
      return;
    }
    check(request, metadata, answer);
  };
}

/**
 * Where the tracing scenarios' sidecar exports its spans: an OTLP/gRPC TraceService that accepts
 * every Export and discards it without decoding. The sidecar pays its whole export cost
 * (serialising, batching, the gRPC call); the receiver costs the bench almost nothing and runs in
 * the bench process, off the sidecar's pinned cores.
 */
import * as grpc from '@grpc/grpc-js';

export interface OtlpSink {
  readonly endpoint: string;
  /** Export calls received so far. */
  exports(): number;
  close(): Promise<void>;
}

export async function startOtlpSink(): Promise<OtlpSink> {
  let received = 0;
  const server = new grpc.Server();
  const passBytes = (bytes: Buffer): Buffer => bytes;
  server.addService(
    {
      Export: {
        path: '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
        requestStream: false,
        responseStream: false,
        requestDeserialize: passBytes,
        requestSerialize: passBytes,
        // An empty ExportTraceServiceResponse: every span accepted.
        responseSerialize: () => Buffer.alloc(0),
        responseDeserialize: passBytes,
      },
    },
    {
      Export: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        received++;
        callback(null, Buffer.alloc(0));
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  return {
    endpoint: `127.0.0.1:${port}`,
    exports: () => received,
    close: () => new Promise((resolve) => server.tryShutdown(() => resolve())),
  };
}

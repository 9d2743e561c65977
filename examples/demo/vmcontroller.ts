/**
 * vmcontroller: a gRPC service that records each namespace in SpiceDB as
 * `namespace:<id>#cloud@cloud:<cloud>`, the write that failed in the seed. It knows nothing about
 * JWTs or permission checks: its Envoy and sidecar decided who may call it, on the cloud the
 * request message itself names, before the call arrived; and its writes to SpiceDB leave through
 * its own egress listener, where its sidecar attaches vmcontroller's service token. It sends no
 * credentials of its own and reads no identity or authorization header.
 */
import * as grpc from '@grpc/grpc-js';
import { v1 } from '@authzed/authzed-node';
import { VMCONTROLLER_SERVICE } from './vmcontroller-api.js';
import type { NamespaceMessage, NamespaceRequest } from './vmcontroller-api.js';

const WRITE_RELATIONSHIPS = '/authzed.api.v1.PermissionsService/WriteRelationships';

export interface VmControllerOptions {
  readonly port: number;
  /** This pod's Envoy egress listener (host:port); SpiceDB is reached as authority `spicedb`. */
  readonly egress: string;
}

export interface RunningVmController {
  readonly namespaces: ReadonlyMap<string, NamespaceMessage>;
  stop(): Promise<void>;
}

function requestIdOf(call: grpc.ServerUnaryCall<NamespaceRequest, NamespaceMessage>): string | undefined {
  const id = call.metadata.get('x-request-id')[0];
  return id === undefined ? undefined : String(id);
}

export async function startVmController(options: VmControllerOptions): Promise<RunningVmController> {
  const namespaces = new Map<string, NamespaceMessage>();
  const spicedb = new grpc.Client(options.egress, grpc.credentials.createInsecure(), { 'grpc.default_authority': 'spicedb' });

  const writeRelation = (request: NamespaceRequest, requestId: string | undefined): Promise<string> => {
    const message = v1.WriteRelationshipsRequest.create({
      updates: [
        v1.RelationshipUpdate.create({
          // TOUCH: a retried saga step writes the same relation again without failing.
          operation: v1.RelationshipUpdate_Operation.TOUCH,
          relationship: v1.Relationship.create({
            resource: v1.ObjectReference.create({ objectType: 'namespace', objectId: request.namespace_id }),
            relation: 'cloud',
            subject: v1.SubjectReference.create({ object: v1.ObjectReference.create({ objectType: 'cloud', objectId: request.cloud_id }) }),
          }),
        }),
      ],
    });
    const metadata = new grpc.Metadata();
    // Tracing only: lets the decision log lines of this write be tied to the call that caused it.
    if (requestId !== undefined) metadata.set('x-request-id', requestId);
    return new Promise((resolve, reject) => {
      spicedb.makeUnaryRequest(
        WRITE_RELATIONSHIPS,
        (value: v1.WriteRelationshipsRequest) => Buffer.from(v1.WriteRelationshipsRequest.toBinary(value)),
        (bytes: Buffer) => v1.WriteRelationshipsResponse.fromBinary(bytes),
        message,
        metadata,
        { deadline: Date.now() + 5000 },
        (error, response) => (error ? reject(error) : resolve(response?.writtenAt?.token ?? '')),
      );
    });
  };

  const server = new grpc.Server();
  server.addService(VMCONTROLLER_SERVICE, {
    CreateNamespace(call: grpc.ServerUnaryCall<NamespaceRequest, NamespaceMessage>, callback: grpc.sendUnaryData<NamespaceMessage>) {
      writeRelation(call.request, requestIdOf(call)).then(
        (writtenAt) => {
          const namespace = { cloud_id: call.request.cloud_id, namespace_id: call.request.namespace_id, written_at: writtenAt };
          namespaces.set(namespace.namespace_id, namespace);
          callback(null, namespace);
        },
        (error: grpc.ServiceError) => {
          // The seed's message, so the failure reads the same when SpiceDB refuses the write. A
          // sidecar's denial already names its reason in the details (`<reason>: <text>`).
          callback({
            code: error.code === grpc.status.UNAVAILABLE ? grpc.status.UNAVAILABLE : grpc.status.INTERNAL,
            details: `failed to create namespace relation: ${error.details}`,
          });
        },
      );
    },
    GetNamespace(call: grpc.ServerUnaryCall<NamespaceRequest, NamespaceMessage>, callback: grpc.sendUnaryData<NamespaceMessage>) {
      // A namespace is addressed by its cloud and its id, like a row by its full key, so one in
      // another cloud is not found here. That the caller may view this cloud, the sidecar decided.
      const namespace = namespaces.get(call.request.namespace_id);
      if (!namespace || namespace.cloud_id !== call.request.cloud_id) return callback({ code: grpc.status.NOT_FOUND, details: 'no such namespace' });
      callback(null, namespace);
    },
  });
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${options.port}`, grpc.ServerCredentials.createInsecure(), (error) => (error ? reject(error) : resolve())),
  );
  return {
    namespaces,
    stop: () =>
      new Promise<void>((resolve) => {
        spicedb.close();
        server.tryShutdown(() => resolve());
        // A call stuck in flight must not hold the demo open.
        setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 1000).unref();
      }),
  };
}

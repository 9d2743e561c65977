/**
 * The vmcontroller gRPC API (vmcontroller.proto), shared by the server and its callers: the
 * service definition loaded with @grpc/proto-loader, the message shapes, and one typed unary call
 * helper. Callers pass identity only as metadata the sidecars understand (`authorization`,
 * `x-jwtauth-on-behalf-of`); what a call is about (its cloud) is in the message, where the
 * sidecars' checks read it (`{body.cloud_id}`), so no header repeats it.
 */
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { PACKAGE_ROOT } from '../../src/base/package-root.js';

export const DEMO_DIR = join(PACKAGE_ROOT, 'examples', 'demo');
const VMCONTROLLER_SERVICE_NAME = 'demo.vmcontroller.v1.VmController';

export interface NamespaceRequest {
  cloud_id: string;
  namespace_id: string;
}

export interface NamespaceMessage {
  cloud_id: string;
  namespace_id: string;
  written_at: string;
}

export type VmMethod = 'CreateNamespace' | 'GetNamespace';

const packageDefinition = loadSync(join(DEMO_DIR, 'vmcontroller.proto'), { keepCase: true, defaults: true, longs: String });

/** The service definition for grpc.Server#addService. */
export const VMCONTROLLER_SERVICE: grpc.ServiceDefinition = packageDefinition[VMCONTROLLER_SERVICE_NAME] as grpc.ServiceDefinition;

function method(name: VmMethod): grpc.MethodDefinition<NamespaceRequest, NamespaceMessage> {
  const definition = VMCONTROLLER_SERVICE[name];
  if (!definition) throw new Error(`vmcontroller.proto has no ${name}`);
  return definition as grpc.MethodDefinition<NamespaceRequest, NamespaceMessage>;
}

/** What a failed call looked like to the caller: the gRPC status and the sidecar's reason, if any. */
export interface CallFailure {
  readonly code: string;
  readonly details: string;
  /** `x-jwtauth-reason` from the denial (Envoy returns the sidecar's headers as gRPC metadata). */
  readonly reason: string | undefined;
}

export type CallResult = { readonly ok: true; readonly value: NamespaceMessage } | { readonly ok: false; readonly failure: CallFailure };

function failureOf(error: grpc.ServiceError): CallFailure {
  const reason = error.metadata?.get('x-jwtauth-reason')[0];
  return { code: grpc.status[error.code] ?? String(error.code), details: error.details, reason: reason === undefined ? undefined : String(reason) };
}

/**
 * A plain gRPC client for vmcontroller. `target` is where the packets go (the pod's egress
 * listener, or, for the seed's "native" client, vmcontroller's own address); `authority` is the
 * name Envoy routes on.
 */
export class VmControllerClient {
  private readonly client: grpc.Client;

  constructor(target: string, authority = 'vmcontroller') {
    this.client = new grpc.Client(target, grpc.credentials.createInsecure(), { 'grpc.default_authority': authority });
  }

  call(name: VmMethod, request: NamespaceRequest, headers: Readonly<Record<string, string>>, timeoutMs = 5000): Promise<CallResult> {
    const definition = method(name);
    const metadata = new grpc.Metadata();
    for (const [key, value] of Object.entries(headers)) metadata.set(key, value);
    return new Promise((resolve) => {
      this.client.makeUnaryRequest(
        definition.path,
        definition.requestSerialize,
        definition.responseDeserialize,
        request,
        metadata,
        { deadline: Date.now() + timeoutMs },
        (error, value) => {
          if (error) resolve({ ok: false, failure: failureOf(error) });
          else if (value === undefined) resolve({ ok: false, failure: { code: 'UNKNOWN', details: 'empty response', reason: undefined } });
          else resolve({ ok: true, value });
        },
      );
    });
  }

  close(): void {
    this.client.close();
  }
}

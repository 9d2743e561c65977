/**
 * The demo's port plan. The YAML files in examples/demo/envoy and examples/demo/sidecars are
 * written with these numbers, so each file reads as a complete, concrete configuration; at run
 * time every number is replaced by a free port (and nothing else is changed), so the demo can
 * run beside anything already listening, and beside itself in the test suite.
 */
export const PORT_PLAN = {
  gatewayApp: 18080,
  gatewayIngress: 10080,
  gatewayEgress: 15080,
  gatewayEnvoyAdmin: 19080,
  gatewaySidecarGrpc: 19180,
  gatewaySidecarAdmin: 19280,

  vmcontrollerApp: 18081,
  vmcontrollerIngress: 10081,
  vmcontrollerEgress: 15081,
  vmcontrollerEnvoyAdmin: 19081,
  vmcontrollerSidecarGrpc: 19181,
  vmcontrollerSidecarAdmin: 19281,

  spicedbGrpc: 50051,
  spicedbIngress: 10082,
  spicedbEnvoyAdmin: 19082,
  spicedbSidecarGrpc: 19182,
  spicedbSidecarAdmin: 19282,
} as const;

export type PortRole = keyof typeof PORT_PLAN;
export type Ports = Record<PortRole, number>;

/**
 * Replaces every planned port number in `text` by the port actually used. A planned number must
 * appear as a whole number (not inside a longer one), and every file must use only planned ports
 * for things that listen, which `renderTemplate` cannot check, so keep the plan and files in step.
 */
export function rewritePorts(text: string, ports: Ports): string {
  let out = text;
  for (const role of Object.keys(PORT_PLAN) as PortRole[]) {
    out = out.replace(new RegExp(`(?<![0-9])${PORT_PLAN[role]}(?![0-9])`, 'g'), String(ports[role]));
  }
  return out;
}

/** `iss` of each sidecar's minted tokens, and of the demo's public auth service. */
export const ISSUER = {
  gateway: 'https://gwadmin.mesh.demo',
  vmcontroller: 'https://vmcontroller.mesh.demo',
  authService: 'https://auth.public.demo',
} as const;

/** The audience of user tokens from the public auth service (what the gateway's API expects). */
export const PUBLIC_API_AUDIENCE = 'cloud-api';

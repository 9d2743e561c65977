import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { parseConfigText } from '../../src/config/load.js';

describe('deployment examples stay valid', () => {
  it('the Kubernetes example’s jwtauth.yaml passes the sidecar’s own validation', () => {
    const documents = parseAllDocuments(readFileSync(new URL('../../examples/kubernetes/gateway-pod.yaml', import.meta.url), 'utf8')).map((d) => d.toJS() as Record<string, unknown>);
    const configMap = documents.find((d) => d.kind === 'ConfigMap') as { data: Record<string, string> };
    const loaded = parseConfigText(configMap.data['jwtauth.yaml'] ?? '', 'gateway-pod.yaml', '/etc/jwtauth');
    expect(loaded.config.service?.name).toBe('gwadmin');
    const deployment = documents.find((d) => d.kind === 'Deployment') as { spec: { template: { spec: { containers: { name: string; readinessProbe?: { httpGet?: { path: string } } }[] } } } };
    const sidecar = deployment.spec.template.spec.containers.find((c) => c.name === 'jwtauth-sidecar');
    expect(sidecar?.readinessProbe?.httpGet?.path).toBe('/readyz');
  });
});

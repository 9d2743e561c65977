/**
 * The `tracing` section, and how it combines with the standard OpenTelemetry environment
 * variables. A key set in the file wins over its variable, which wins over the default, so a
 * platform can inject OTEL_* variables into every pod and a team can still pin a value in its
 * file. Only `tracing.enabled` turns tracing on: an OTEL_* variable inherited from the pod never
 * starts exporting by itself, and OTEL_SDK_DISABLED=true turns it off whatever the file says.
 */
import { z } from 'zod';

const TRACING_SAMPLERS = ['always_on', 'always_off', 'parentbased_traceidratio', 'traceidratio'] as const;
type TracingSampler = (typeof TRACING_SAMPLERS)[number];

export const tracingSchema = z
  .strictObject({
    enabled: z.boolean().default(false).describe('export one trace span per Check, and child spans, over OTLP gRPC'),
    endpoint: z
      .string()
      .regex(/^(https?:\/\/)?(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}\/?$/, 'expected host:port, http://host:port or https://host:port')
      .optional()
      .describe('OTLP gRPC collector; host:port is plaintext, https:// is TLS (else OTEL_EXPORTER_OTLP_ENDPOINT, else 127.0.0.1:4317)'),
    sampler: z.enum(TRACING_SAMPLERS).optional().describe('else OTEL_TRACES_SAMPLER, else parentbased_traceidratio'),
    ratio: z.number().min(0).max(1).optional().describe('fraction sampled by the *traceidratio samplers (else OTEL_TRACES_SAMPLER_ARG, else 1)'),
    serviceName: z.string().min(1).optional().describe('service.name of the spans (else OTEL_SERVICE_NAME, else jwtauth-sidecar)'),
  })
  .prefault({});

export type TracingConfig = z.infer<typeof tracingSchema>;

/** What a tracer provider is built from, every value decided. */
export interface TracingSettings {
  /** The exporter URL: http:// (plaintext) or https:// (TLS). */
  readonly endpoint: string;
  readonly sampler: TracingSampler;
  readonly ratio: number;
  readonly serviceName: string;
}

const DEFAULT_ENDPOINT = 'http://127.0.0.1:4317';
const DEFAULT_SERVICE_NAME = 'jwtauth-sidecar';

function endpointUrl(endpoint: string): string {
  return /^https?:\/\//.test(endpoint) ? endpoint.replace(/\/$/, '') : `http://${endpoint}`;
}

/**
 * The OTEL_TRACES_SAMPLER spellings this sidecar understands. The parentbased_always_* forms are
 * the ratio sampler at 1 and 0, which sample exactly as they do.
 */
function samplerFromEnv(value: string | undefined): { sampler: TracingSampler; ratio?: number } | undefined {
  switch (value?.trim().toLowerCase()) {
    case 'always_on':
    case 'always_off':
    case 'traceidratio':
    case 'parentbased_traceidratio':
      return { sampler: value.trim().toLowerCase() as TracingSampler };
    case 'parentbased_always_on':
      return { sampler: 'parentbased_traceidratio', ratio: 1 };
    case 'parentbased_always_off':
      return { sampler: 'parentbased_traceidratio', ratio: 0 };
    default:
      return undefined;
  }
}

function ratioFromEnv(value: string | undefined): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const ratio = Number(value);
  return Number.isFinite(ratio) && ratio >= 0 && ratio <= 1 ? ratio : undefined;
}

/** The settings to trace with, or undefined when tracing is off. */
export function resolveTracingSettings(config: TracingConfig, env: NodeJS.ProcessEnv): TracingSettings | undefined {
  if (!config.enabled || env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return undefined;
  const fromEnv = samplerFromEnv(env.OTEL_TRACES_SAMPLER);
  const envEndpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim() || env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  return {
    endpoint: config.endpoint !== undefined ? endpointUrl(config.endpoint) : envEndpoint ? endpointUrl(envEndpoint) : DEFAULT_ENDPOINT,
    sampler: config.sampler ?? fromEnv?.sampler ?? 'parentbased_traceidratio',
    ratio: config.ratio ?? fromEnv?.ratio ?? ratioFromEnv(env.OTEL_TRACES_SAMPLER_ARG) ?? 1,
    serviceName: config.serviceName ?? (env.OTEL_SERVICE_NAME?.trim() || DEFAULT_SERVICE_NAME),
  };
}

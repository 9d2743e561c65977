// STUB owned by the outbound work: the `outbound` section. Replace freely, keep the export names.
import { z } from 'zod';
export const outboundSchema = z.strictObject({}).optional();
export type OutboundConfig = z.infer<typeof outboundSchema>;

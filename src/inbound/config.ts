// STUB owned by the inbound work: the `inbound` section. Replace freely, keep the export names.
import { z } from 'zod';
export const inboundSchema = z.strictObject({}).optional();
export type InboundConfig = z.infer<typeof inboundSchema>;

// STUB owned by the inbound work: the `issuers` section. Replace freely, keep the export names.
import { z } from 'zod';
export const issuersSchema = z.array(z.unknown()).default([]);
export type IssuersConfig = z.infer<typeof issuersSchema>;

// STUB owned by the inbound work: the `spicedb` section. Replace freely, keep the export names.
import { z } from 'zod';
export const spicedbSchema = z.strictObject({}).default({});
export type SpicedbConfig = z.infer<typeof spicedbSchema>;

// STUB owned by the outbound work: the `tokens` section (token source + minting keys). Replace freely, keep the export names.
import { z } from 'zod';
export const tokensSchema = z.strictObject({}).optional();
export type TokensConfig = z.infer<typeof tokensSchema>;

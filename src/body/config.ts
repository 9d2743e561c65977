/**
 * The `body` section: how rules that read `{body.…}` decode request messages. gRPC messages are
 * decoded with descriptors the operator supplies (.proto files, or a FileDescriptorSet as
 * `protoc --include_imports --descriptor_set_out` or `buf build -o` writes it); JSON bodies need
 * nothing. Only rules that read the body pay for any of it.
 */
import { z } from 'zod';

export const bodySchema = z
  .strictObject({
    maxBytes: z
      .int()
      .min(64)
      .max(16 * 1024 * 1024)
      .default(65_536)
      .describe('largest JSON body, or gRPC message after decompression, a rule will decode'),
    protoFiles: z.array(z.string().min(1)).min(1).optional().describe('.proto files defining the services; relative to the config file'),
    includePaths: z.array(z.string().min(1)).optional().describe('directories searched for imports, like protoc -I; default: each file’s directory'),
    descriptorSet: z.string().min(1).optional().describe('binary FileDescriptorSet, instead of protoFiles'),
  })
  .refine((body) => !(body.protoFiles && body.descriptorSet), { message: 'give protoFiles or descriptorSet, not both', path: ['descriptorSet'] })
  .refine((body) => !(body.includePaths && !body.protoFiles), { message: 'includePaths only applies to protoFiles', path: ['includePaths'] })
  .prefault({});

export type BodyConfig = z.infer<typeof bodySchema>;

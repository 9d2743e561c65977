/**
 * Loads the message descriptors that gRPC body paths are resolved against, from .proto files or
 * from a binary FileDescriptorSet (`protoc --include_imports --descriptor_set_out`, `buf build -o`).
 * Field names are kept exactly as written in the .proto (`cloud_id`, not `cloudId`), because that
 * is how body paths name them.
 *
 * Imports are resolved like protoc's `-I`: each include path in order. Without include paths, the
 * directories of the listed files are searched. `google/protobuf/*.proto` not found there falls
 * back to the copies protobufjs ships. Every failure is a BodyConfigError naming the file.
 */
import protobuf from 'protobufjs';
import descriptorExtension from 'protobufjs/ext/descriptor/index.js';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { BodyConfigError } from './contract.js';

export interface DescriptorSource {
  /** Absolute paths of the .proto files that define the services. */
  readonly protoFiles?: readonly string[];
  /** Absolute directories searched, in order, for `import`ed files. */
  readonly includePaths?: readonly string[];
  /** Absolute path of a binary FileDescriptorSet. */
  readonly descriptorSet?: string;
}

/** ext/descriptor adds this static to Root at import; protobufjs's typings do not declare it. */
type RootWithDescriptors = typeof protobuf.Root & {
  fromDescriptor(descriptor: protobuf.Message): protobuf.Root;
};

const WELL_KNOWN_PREFIX = 'google/protobuf/';

function reasonOf(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === undefined ? error.message : code;
  }
  return String(error);
}

function requireAbsolute(path: string, what: string): string {
  if (!isAbsolute(path)) throw new BodyConfigError(`${what} must be an absolute path: ${path}`);
  return resolve(path);
}

/** protobufjs reports `... (line 7)`; operators want `file:7: ...` like protoc. */
function located(file: string, error: unknown): string {
  const message = reasonOf(error);
  const match = /\s*\((?:[^()]*, )?line (\d+)\)$/.exec(message);
  return match === null ? `${file}: ${message}` : `${file}:${match[1]}: ${message.slice(0, match.index)}`;
}

function protobufjsIncludeDir(): string {
  return dirname(createRequire(import.meta.url).resolve('protobufjs/package.json'));
}

function loadProtoFiles(protoFiles: readonly string[], includePaths: readonly string[] | undefined): protobuf.Root {
  const files = protoFiles.map((file) => requireAbsolute(file, 'protoFiles entry'));
  const searchPath = (includePaths ?? [...new Set(files.map((file) => dirname(file)))]).map((dir) =>
    requireAbsolute(dir, 'includePaths entry'),
  );
  for (const dir of searchPath) {
    if (!existsSync(dir)) throw new BodyConfigError(`include path does not exist: ${dir}`);
  }

  const root = new protobuf.Root();
  const seen = new Set<string>();

  const resolveImport = (name: string, importer: string): string | undefined => {
    for (const dir of searchPath) {
      const candidate = resolve(dir, name);
      if (existsSync(candidate)) return candidate;
    }
    if (name.startsWith(WELL_KNOWN_PREFIX)) {
      if (protobuf.common.get(name) !== null) return undefined; // bundled with protobufjs; added below
      const shipped = join(protobufjsIncludeDir(), name);
      if (existsSync(shipped)) return shipped;
    }
    throw new BodyConfigError(`${importer}: import "${name}" was not found in the include paths (${searchPath.join(', ')})`);
  };

  const parseFile = (file: string): void => {
    if (seen.has(file)) return;
    seen.add(file);
    let source: string;
    try {
      source = readFileSync(file, 'utf8');
    } catch (error) {
      throw new BodyConfigError(`cannot read proto file ${file}: ${reasonOf(error)}`);
    }
    let parsed: protobuf.IParserResult;
    try {
      parsed = protobuf.parse(source, root, { keepCase: true });
    } catch (error) {
      throw new BodyConfigError(located(file, error));
    }
    for (const name of [...(parsed.imports ?? []), ...(parsed.weakImports ?? [])]) {
      const path = resolveImport(name, file);
      if (path !== undefined) {
        parseFile(path);
      } else if (!seen.has(name)) {
        seen.add(name);
        const bundled = protobuf.common.get(name);
        if (bundled?.nested !== undefined) root.addJSON(bundled.nested);
      }
    }
  };

  for (const file of files) {
    if (!existsSync(file)) throw new BodyConfigError(`proto file does not exist: ${file}`);
    parseFile(file);
  }
  try {
    root.resolveAll();
  } catch (error) {
    throw new BodyConfigError(`cannot resolve the types in ${files.join(', ')}: ${reasonOf(error)}`);
  }
  return root;
}

function loadDescriptorSet(path: string): protobuf.Root {
  const file = requireAbsolute(path, 'descriptorSet');
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (error) {
    throw new BodyConfigError(`cannot read descriptor set ${file}: ${reasonOf(error)}`);
  }
  let set: protobuf.Message & { file?: unknown[] };
  try {
    set = descriptorExtension.FileDescriptorSet.decode(bytes);
  } catch (error) {
    throw new BodyConfigError(`${file} is not a binary FileDescriptorSet: ${reasonOf(error)}`);
  }
  if (set.file === undefined || set.file.length === 0) {
    throw new BodyConfigError(`${file} is not a binary FileDescriptorSet: it describes no files`);
  }
  try {
    return (protobuf.Root as RootWithDescriptors).fromDescriptor(set);
  } catch (error) {
    throw new BodyConfigError(`${file}: cannot build descriptors: ${reasonOf(error)}`);
  }
}

export function loadDescriptors(source: DescriptorSource): protobuf.Root {
  const hasFiles = source.protoFiles !== undefined;
  const hasSet = source.descriptorSet !== undefined;
  if (hasFiles === hasSet) throw new BodyConfigError('give exactly one of protoFiles or descriptorSet');
  if (source.protoFiles !== undefined) {
    if (source.protoFiles.length === 0) throw new BodyConfigError('protoFiles is empty');
    return loadProtoFiles(source.protoFiles, source.includePaths);
  }
  if (source.includePaths !== undefined) {
    throw new BodyConfigError('includePaths apply to protoFiles only; a descriptor set already holds its imports');
  }
  return loadDescriptorSet(source.descriptorSet ?? '');
}

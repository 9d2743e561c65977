import type { PermissionChecker } from '../core/ports.js';

/**
 * The role every layer of the permission stack plays: the raw clients (gRPC, embedded) and each
 * decorator around them (cache, limit, metrics). Small enough that any layer can be swapped or
 * tested on its own.
 */
export interface ClosableChecker extends PermissionChecker {
  close(): Promise<void>;
}

/**
 * The shape every running process of the sidecar has, one sidecar or worker mode's primary alike,
 * so the process control (process-control.ts) drives both the same way.
 */
export interface Lifecycle {
  /** Re-reads the configuration; a refused one leaves the running one serving. */
  reload(why: string): unknown;
  /** NOT_SERVING, let the Checks in flight answer, close everything; resolves when closed. */
  drain(): Promise<void>;
}

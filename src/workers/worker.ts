/**
 * One worker of worker mode: a whole sidecar (serve.ts) without an admin listener, which reports
 * its status to the primary and takes reload and drain from it. The primary serves the admin
 * listener for all workers and aggregates their metrics (primary.ts).
 */
import { Metrics } from '../observability/metrics.js';
import { serve } from '../serve.js';
import type { RunningSidecar, ServeOptions } from '../serve.js';
import { isPrimaryMessage } from './messages.js';
import type { WorkerMessage } from './messages.js';
import { FeedReplay } from '../spicedb/change-feed.js';

function tell(message: WorkerMessage): void {
  // After the primary is gone there is nobody to tell; the 'disconnect' handler ends this process.
  if (process.connected) process.send?.(message);
}

export interface WorkerControls {
  /** The primary asked this worker to drain and exit (the command's own drain-and-exit). */
  readonly onDrain: () => void;
  /** The primary went away: this worker must not serve on alone. */
  readonly onOrphaned: () => void;
}

export async function startWorker(options: Omit<ServeOptions, 'admin' | 'onStatus' | 'metrics' | 'changeFeed'>, controls: WorkerControls): Promise<RunningSidecar> {
  const metrics = new Metrics();
  // Listening before start-up finishes: a drain asked meanwhile must not wait for a SIGKILL. A
  // reload asked meanwhile needs nothing: this worker is reading the file as it is now.
  let sidecar: RunningSidecar | undefined;
  // The pod's one SpiceDB Watch runs in the primary; its events arrive here.
  // A replay, like the primary's own feed: this worker's caches subscribe to it as they are built.
  const changeFeed = new FeedReplay();
  process.on('message', (message: unknown) => {
    if (!isPrimaryMessage(message)) return;
    switch (message.type) {
      case 'jwtauth:drain':
        controls.onDrain();
        break;
      case 'jwtauth:reload':
        void sidecar?.reload(message.why);
        break;
      case 'jwtauth:watch':
        changeFeed.publish(message.event);
        break;
      case 'jwtauth:metrics-request': {
        const id = message.id;
        void metrics.registry.getMetricsAsJSON().then((all) => tell({ type: 'jwtauth:metrics', id, metrics: all }));
        break;
      }
    }
  });
  process.once('disconnect', controls.onOrphaned);
  tell({ type: 'jwtauth:watch-subscribe' });
  sidecar = await serve({ ...options, metrics, admin: false, changeFeed, onStatus: (status) => tell({ type: 'jwtauth:status', status }) });
  tell({ type: 'jwtauth:listening', grpcPort: sidecar.grpcPort, listenerPorts: sidecar.listenerPorts });
  return sidecar;
}

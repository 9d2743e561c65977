/**
 * Bytes allocated on V8's heap while a piece of work runs, with the collections it caused. Read
 * from the heap's used size before and after each collection (v8.GCProfiler), which is exact, not
 * from `--trace-gc-nvp`'s `allocated=` field, which over-counts on Node 20 (a loop that allocated
 * a known 1.78 GB summed to 4.32 GB there; the heap sizes said 1.79 GB). Buffers' backing stores
 * are outside the heap and not counted; their small JS handles are.
 */
import { GCProfiler, getHeapStatistics } from 'node:v8';

export interface AllocationSample {
  /** Heap bytes allocated while `work` ran. */
  readonly bytes: number;
  readonly scavenges: number;
  /** Full collections (mark-sweep-compact), the long pauses. */
  readonly markCompacts: number;
}

export async function measureAllocation(work: () => Promise<void>): Promise<AllocationSample> {
  const profiler = new GCProfiler();
  let previous = getHeapStatistics().used_heap_size;
  profiler.start();
  await work();
  const end = getHeapStatistics().used_heap_size;
  const { statistics } = profiler.stop();
  let bytes = 0;
  let scavenges = 0;
  let markCompacts = 0;
  for (const collection of statistics) {
    bytes += collection.beforeGC.heapStatistics.usedHeapSize - previous;
    previous = collection.afterGC.heapStatistics.usedHeapSize;
    if (collection.gcType === 'Scavenge' || collection.gcType === 'MinorMarkSweep') scavenges++;
    else if (collection.gcType === 'MarkSweepCompact') markCompacts++;
  }
  return { bytes: bytes + end - previous, scavenges, markCompacts };
}

/**
 * Preloaded into a process under measurement (`node --import dist/dev/gc-accounting.js`): counts
 * the heap bytes it allocates and the collections they cause (heap-allocation.ts). On SIGUSR2 it
 * writes the totals since it started, with a sequence number, to the file named by
 * JWTAUTH_GC_ACCOUNTING_FILE, so a bench can take the difference over a stretch of load. Does
 * nothing without that variable.
 */
import { writeFileSync } from 'node:fs';
import { AllocationCounter } from './heap-allocation.js';
import type { AllocationSample } from './heap-allocation.js';

export interface GcTotals extends AllocationSample {
  readonly sequence: number;
}

const file = process.env.JWTAUTH_GC_ACCOUNTING_FILE;
if (file !== undefined) {
  const counter = new AllocationCounter();
  let sequence = 0;
  process.on('SIGUSR2', () => {
    const totals: GcTotals = { sequence: ++sequence, ...counter.read() };
    writeFileSync(file, JSON.stringify(totals));
  });
}

/**
 * Counting on the Check path without prom-client's per-call cost: `Counter.inc(labels)` turns the
 * labels into a string key on every call, a few hundred bytes of garbage per Check across the
 * counters a Check touches. Here each label set gets a cell once (a plain number), the hot path
 * adds to it, and the cells are added into the Counter when it is collected, i.e. on a scrape, so
 * what a scrape shows is exact.
 */
import type { Counter, LabelValues } from 'prom-client';

export class CounterCell<L extends string> {
  pending = 0;

  constructor(readonly labels: LabelValues<L>) {}

  inc(): void {
    this.pending++;
  }
}

export class CounterCells<L extends string> {
  readonly #cells = new Map<string, CounterCell<L>>();

  /** The cell of `labels`: made on first use; callers keep it, so the hot path never looks it up by key. */
  cell(labels: LabelValues<L>): CounterCell<L> {
    const key = JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)));
    let cell = this.#cells.get(key);
    if (cell === undefined) {
      cell = new CounterCell(labels);
      this.#cells.set(key, cell);
    }
    return cell;
  }

  /** The Counter's `collect`: adds every cell's count into it (prom-client calls it with the Counter as `this`). */
  collector(): (this: Counter<L>) => void {
    const cells = this.#cells;
    return function addCells(this: Counter<L>) {
      for (const cell of cells.values()) {
        if (cell.pending === 0) continue;
        this.inc(cell.labels, cell.pending);
        cell.pending = 0;
      }
    };
  }
}

/**
 * A value now, or a promise of it. Ports answer from their caches synchronously (a verified token,
 * a cached permission), so a Check whose answers are all cached is decided without a promise,
 * an await or a microtask: each async step costs a few hundred bytes of garbage, which on the
 * cached path was most of what a Check allocated.
 */
export type Awaitable<T> = T | Promise<T>;

/** `next(value)` at once when `value` is already here, else when it arrives. */
export function andThen<T, U>(value: Awaitable<T>, next: (value: T) => Awaitable<U>): Awaitable<U> {
  return value instanceof Promise ? value.then(next) : next(value);
}

/**
 * A TCP proxy in front of a server that can be told to stall: bytes stop flowing both ways on
 * every connection (open or new) until it is told to pass again. To the client this is a server
 * that accepts and never answers — latency far over any deadline, without a connection error.
 */
import { connect, createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';

interface Pair {
  readonly client: Socket;
  upstream: Socket | undefined;
  held: Buffer[];
  heldDown: Buffer[];
}

export class StallProxy {
  private server: Server | undefined;
  private readonly pairs = new Set<Pair>();
  private stalled = false;
  port = 0;

  constructor(private readonly targetPort: number) {}

  async start(): Promise<this> {
    this.server = createServer((client) => this.accept(client));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  get endpoint(): string {
    return `127.0.0.1:${this.port}`;
  }

  setStalled(stalled: boolean): void {
    this.stalled = stalled;
    for (const pair of this.pairs) {
      if (stalled) continue;
      if (!pair.upstream) this.open(pair);
      else {
        for (const chunk of pair.held) pair.upstream.write(chunk);
        pair.held = [];
      }
      for (const chunk of pair.heldDown) pair.client.write(chunk);
      pair.heldDown = [];
    }
  }

  private accept(client: Socket): void {
    const pair: Pair = { client, upstream: undefined, held: [], heldDown: [] };
    this.pairs.add(pair);
    client.on('error', () => undefined);
    client.on('close', () => {
      pair.upstream?.destroy();
      this.pairs.delete(pair);
    });
    client.on('data', (chunk) => {
      // While stalled, what the client sends is held back (it never reaches the server).
      if (this.stalled || !pair.upstream) pair.held.push(chunk);
      else pair.upstream.write(chunk);
    });
    if (!this.stalled) this.open(pair);
  }

  private open(pair: Pair): void {
    const upstream = connect(this.targetPort, '127.0.0.1');
    pair.upstream = upstream;
    upstream.on('error', () => pair.client.destroy());
    upstream.on('close', () => pair.client.destroy());
    upstream.on('data', (chunk) => {
      // Answers that arrive while stalled are held back until the proxy passes again.
      if (this.stalled) pair.heldDown.push(chunk);
      else pair.client.write(chunk);
    });
    upstream.on('connect', () => {
      for (const chunk of pair.held) upstream.write(chunk);
      pair.held = [];
    });
  }

  async close(): Promise<void> {
    for (const pair of this.pairs) {
      pair.client.destroy();
      pair.upstream?.destroy();
    }
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

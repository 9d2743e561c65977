/** The bench's progress lines on stdout, each stamped with the seconds since the run started. */
export type Log = (line: string) => void;

export function progressLog(startedAt: number): Log {
  return (line) => {
    process.stdout.write(`[bench ${((Date.now() - startedAt) / 1000).toFixed(0).padStart(4)}s] ${line}\n`);
  };
}

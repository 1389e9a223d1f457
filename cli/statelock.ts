import { mkdirSync, openSync, readFileSync, rmSync, writeSync, closeSync } from "node:fs";
import { join } from "node:path";
import { CliError, EXIT_FAILURE } from "./errors";

/**
 * One keyturn process per state directory: `rotate`, `resume` and `serve` all run the orchestrations
 * stored there, and two hosts replaying one history would each execute its activities. The lock is a
 * file naming the holder's pid; a holder that died (SIGKILL, a crash) leaves it behind, and the next
 * process takes it over because that pid no longer runs.
 */
export interface StateLockHolder {
  pid: number;
  command: string;
  since: string;
}

export const LOCK_FILE = "keyturn.lock";

/** Takes the state directory's lock or throws a CliError naming the process that holds it. */
export function acquireStateLock(stateDir: string, command: string): () => void {
  mkdirSync(stateDir, { recursive: true });
  const path = join(stateDir, LOCK_FILE);
  const me: StateLockHolder = { pid: process.pid, command, since: new Date().toISOString() };
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, "wx");
      writeSync(fd, JSON.stringify(me));
      closeSync(fd);
      const release = () => {
        if (holder(path)?.pid === process.pid) rmSync(path, { force: true });
        process.off("exit", release);
      };
      process.on("exit", release);
      return release;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const current = holder(path);
      if (current && current.pid !== process.pid && running(current.pid)) {
        throw new CliError(
          `another keyturn process is using ${stateDir}: \`keyturn ${current.command}\` (pid ${current.pid}, since ${current.since}). ` +
            `Wait for it to finish, or stop it and run \`keyturn resume\`; two processes on one state directory would both run its rotations`,
          EXIT_FAILURE,
        );
      }
      // Left by a process that is gone: take it over.
      rmSync(path, { force: true });
    }
  }
  throw new CliError(`could not take the lock ${path}: another process keeps taking it`, EXIT_FAILURE);
}

function holder(path: string): StateLockHolder | undefined {
  try {
    const parsed = JSON.parse(readFileSync(path, "utf8")) as Partial<StateLockHolder>;
    return typeof parsed.pid === "number"
      ? { pid: parsed.pid, command: String(parsed.command ?? "?"), since: String(parsed.since ?? "?") }
      : undefined;
  } catch {
    return undefined;
  }
}

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it runs, under another user.
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

import {
  closeSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { CliError, EXIT_FAILURE } from "./errors";

/**
 * One keyturn process per state directory: `rotate`, `resume` and `serve` all run the orchestrations
 * stored there, and two hosts replaying one history would each execute its activities. The lock is a
 * file naming the holder's pid; a holder that died (SIGKILL, a crash) leaves it behind, and the next
 * process takes it over because that pid no longer runs.
 *
 * The holder touches the file every second, so its time says when the holder was last alive: a
 * process taking the lock over learns how recently requests of the dead one may have been sent, and
 * waits until they can no longer land (see `untilDeadRequestsSettle`).
 */
export interface StateLockHolder {
  pid: number;
  command: string;
  since: string;
}

export const LOCK_FILE = "keyturn.lock";

/** Releases the lock; says when a dead holder taken over was last seen alive. */
export interface StateLock {
  (): void;
  takenOver?: { pid: number; lastAliveMs: number };
}

const HEARTBEAT_MS = 1_000;

/** Takes the state directory's lock or throws a CliError naming the process that holds it. */
export function acquireStateLock(stateDir: string, command: string): StateLock {
  mkdirSync(stateDir, { recursive: true });
  const path = join(stateDir, LOCK_FILE);
  const me: StateLockHolder = { pid: process.pid, command, since: new Date().toISOString() };
  let takenOver: StateLock["takenOver"];
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, "wx");
      writeSync(fd, JSON.stringify(me));
      closeSync(fd);
      const heartbeat = setInterval(() => {
        try {
          const now = new Date();
          utimesSync(path, now, now);
        } catch {
          // taken over or removed: release() will find it is not ours
        }
      }, HEARTBEAT_MS);
      heartbeat.unref();
      const release: StateLock = () => {
        clearInterval(heartbeat);
        if (holder(path)?.pid === process.pid) rmSync(path, { force: true });
        process.off("exit", release);
      };
      process.on("exit", release);
      if (takenOver) release.takenOver = takenOver;
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
      if (current) takenOver = { pid: current.pid, lastAliveMs: lastTouched(path) ?? Date.now() };
      rmSync(path, { force: true });
    }
  }
  throw new CliError(`could not take the lock ${path}: another process keeps taking it`, EXIT_FAILURE);
}

/**
 * After taking over a dead holder's lock: how long until an ARM request it sent just before it died can
 * no longer land (its deadline, KEYTURN_ARM_TIMEOUT_SECONDS, from its last sign of life). Its
 * activities run again here, and one that reads the keys first must see whatever that request did
 * (I4: a regeneration landing after the re-run's read would be repeated). 0 when nothing is pending.
 */
export function untilDeadRequestsSettle(lock: StateLock, armTimeoutMs: number, now = Date.now()): number {
  if (!lock.takenOver) return 0;
  return Math.max(0, lock.takenOver.lastAliveMs + HEARTBEAT_MS + armTimeoutMs - now);
}

function lastTouched(path: string): number | undefined {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return undefined;
  }
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

import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LOCK_FILE, acquireStateLock, untilDeadRequestsSettle } from "../../../cli/statelock";
import { CliError } from "../../../cli/errors";

/** One keyturn process per state directory: rotate, resume and serve exclude each other. */
describe("the state directory's lock", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "keyturn-lock-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const holdAs = (pid: number, command: string) =>
    writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid, command, since: "2026-12-01T00:00:00.000Z" }));

  it("is taken and released, naming this process while held", () => {
    const release = acquireStateLock(dir, "rotate");
    expect(JSON.parse(readFileSync(join(dir, LOCK_FILE), "utf8"))).toMatchObject({
      pid: process.pid,
      command: "rotate",
    });
    release();
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
  });

  it("refuses while another running process holds it, naming that process and what to do", async () => {
    const other = spawn(process.execPath, ["-e", "setTimeout(() => {}, 30000)"]);
    try {
      holdAs(other.pid!, "resume");
      let error: unknown;
      try {
        acquireStateLock(dir, "rotate");
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(CliError);
      expect((error as Error).message).toContain(`\`keyturn resume\` (pid ${other.pid}`);
      expect((error as Error).message).toContain("Wait for it to finish");
    } finally {
      other.kill("SIGKILL");
      await new Promise((resolve) => other.once("exit", resolve));
    }
  });

  it("takes over a lock left by a process that died (SIGKILL leaves it behind)", () => {
    const gone = spawnSync(process.execPath, ["-e", "0"]);
    holdAs(gone.pid, "rotate");
    const release = acquireStateLock(dir, "resume");
    expect(JSON.parse(readFileSync(join(dir, LOCK_FILE), "utf8"))).toMatchObject({
      pid: process.pid,
      command: "resume",
    });
    release();
  });

  it("after taking over a dead holder, waits out the deadline of requests it sent when last alive", () => {
    const gone = spawnSync(process.execPath, ["-e", "0"]);
    holdAs(gone.pid, "rotate");
    const lastAlive = new Date(Date.now() - 2_000);
    utimesSync(join(dir, LOCK_FILE), lastAlive, lastAlive);
    const release = acquireStateLock(dir, "resume");
    try {
      expect(release.takenOver?.pid).toBe(gone.pid);
      const now = lastAlive.getTime() + 2_000;
      // Last alive 2 s ago, a 5 s deadline and the 1 s heartbeat: 4 s to go.
      // File times keep less than a millisecond exactly.
      expect(Math.round(untilDeadRequestsSettle(release, 5_000, now))).toBe(4_000);
      expect(untilDeadRequestsSettle(release, 5_000, now + 60_000)).toBe(0);
    } finally {
      release();
    }
  });

  it("has nothing to wait for when no dead holder was taken over", () => {
    const release = acquireStateLock(dir, "rotate");
    expect(untilDeadRequestsSettle(release, 60_000)).toBe(0);
    release();
  });

  it("is touched while held, so its time says when the holder was last alive", async () => {
    const release = acquireStateLock(dir, "serve");
    try {
      const old = new Date(Date.now() - 60_000);
      utimesSync(join(dir, LOCK_FILE), old, old);
      await new Promise((r) => setTimeout(r, 1_500));
      const { mtimeMs } = statSync(join(dir, LOCK_FILE));
      expect(mtimeMs).toBeGreaterThan(Date.now() - 5_000);
    } finally {
      release();
    }
  });
});

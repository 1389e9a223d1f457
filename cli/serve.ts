import { parseNcrontab } from "../local";
import { CliError, usageError } from "./errors";
import { createHost } from "./host";
import { acquireStateLock } from "./statelock";
import { onSignal, type Io } from "./io";
import { settleDeadRequests, stateDirOf } from "./rotation";
import { preflight, recordTarget, useTarget } from "./target";

export interface ServeOptions {
  connectionFile?: string;
  port?: string;
  stateDir?: string;
  verbose?: boolean;
}

/** 7071 is what the Functions host uses, and where the durable client's management links point. */
export const DEFAULT_PORT = 7071;

export function parsePort(text: string | undefined): number {
  if (text === undefined) return DEFAULT_PORT;
  const port = Number(text);
  if (!/^\d+$/.test(text.trim()) || port > 65535) {
    throw usageError(`--port "${text}" is not a port: use a number from 0 to 65535 (0 picks a free one)`);
  }
  return port;
}

/**
 * `keyturn serve`: the Functions app on the local host, as it runs in Azure: the HTTP API, the
 * monthly timer, and unfinished rotations in the state dir continued, until Ctrl+C.
 */
export async function serve(io: Io, options: ServeOptions): Promise<number> {
  const port = parsePort(options.port);
  const target = useTarget(options.connectionFile);
  await preflight(target);
  const stateDir = stateDirOf(options.stateDir);
  const release = acquireStateLock(stateDir, "serve");
  await settleDeadRequests(io, release);
  const host = createHost(io, {
    stateDir,
    verbose: options.verbose === true,
    info: options.verbose === true,
  });
  const signal = onSignal();
  try {
    let url: string;
    try {
      url = await host.start({ port });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EADDRINUSE") {
        throw new CliError(`port ${port} is in use: pass --port N (0 picks a free one)`);
      }
      throw e;
    }
    recordTarget(stateDir, target);
    const resumed = host.resume();
    const api = `${url}/${host.routePrefix}`;
    const lines = [
      `keyturn serving on ${url} (${target.kind === "emulator" ? `emulator of ${target.connectionFile}` : "Azure"}); state in ${stateDir}`,
      `  POST ${api}/rotations        start a rotation: {"scope": {...}, "dryRun": false, "graceMinutes": 60}`,
      `  GET  ${api}/rotations/{id}   its status and report`,
      `  GET  ${api}/plan?storageAccounts=...   a dry run`,
      `  GET  ${api}/health`,
      `Function key: ${host.keys.function}  (send as the x-functions-key header or ?code=)`,
    ];
    for (const f of host.functions) {
      if (!f.timer) continue;
      let next = "";
      try {
        next = `, next run ${parseNcrontab(f.timer.schedule).next(new Date())?.toISOString() ?? "never"}`;
      } catch {
        // The host reports a bad schedule itself when it arms the timer.
      }
      lines.push(`Timer ${f.name}: ${f.timer.schedule} (UTC)${next}`);
    }
    if (resumed.length > 0) lines.push(`Resumed unfinished instances: ${resumed.join(", ")}`);
    lines.push("Press Ctrl+C to stop.");
    io.out(lines.join("\n") + "\n");
    const received = await signal.signal;
    io.out(
      `\n${received}: stopping; unfinished rotations continue with \`keyturn resume\` or the next \`keyturn serve\`.\n`,
    );
    return 0;
  } finally {
    signal.dispose();
    await host.stop();
    release();
  }
}

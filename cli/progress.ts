import type { InstanceStatus, LocalHost } from "../local";
import { isTerminal } from "../local";
import { formatDuration } from "../shared/rotation";
import type { RotationProgress } from "../functions/orchestrators/rotateAll";
import type { AccountProgress } from "../functions/orchestrators/rotateStorageAccount";
import type { Io } from "./io";

/** One line of the progress view; `key` says which earlier line it replaces. */
export interface ProgressLine {
  key: string;
  text: string;
}

type AccountState = RotationProgress["accounts"][string];

function isRotationProgress(value: unknown): value is Pick<RotationProgress, "phase" | "accounts"> {
  return typeof value === "object" && value !== null && "phase" in value && "accounts" in value;
}

function isAccountProgress(value: unknown): value is AccountProgress {
  return typeof value === "object" && value !== null && "account" in value && "step" in value;
}

function clockTime(iso: string): string {
  return `${iso.slice(11, 19)}Z`;
}

/**
 * The lines for one rotateAll instance and its running accounts. `now` is given for a live view (a
 * terminal, redrawn in place), where a grace period counts down; without it a line changes only when
 * the state does, so a log gets one line per change.
 */
export function progressLines(
  root: InstanceStatus | undefined,
  running: readonly InstanceStatus[],
  rootId: string,
  now?: number,
): ProgressLine[] {
  if (!root) return [{ key: rootId, text: `rotation ${rootId}: starting` }];
  const status = isRotationProgress(root.customStatus) ? root.customStatus : undefined;
  const phase = isTerminal(root.runtimeStatus) ? root.runtimeStatus : (status?.phase ?? "starting");
  const lines: ProgressLine[] = [{ key: rootId, text: `rotation ${rootId}: ${phase}` }];
  const accounts: [string, AccountState][] = Object.entries(status?.accounts ?? {});
  const width = Math.max(0, ...accounts.map(([name]) => name.length));
  const steps = new Map<string, AccountProgress>();
  for (const child of running) {
    if (isAccountProgress(child.customStatus)) steps.set(child.customStatus.account, child.customStatus);
  }
  for (const [name, state] of accounts) {
    let text = `  ${name.padEnd(width)}  ${state}`;
    const step = state === "running" || state === "grace" ? steps.get(name) : undefined;
    if (step) {
      text += `  step ${step.index}/${step.of} ${step.step}`;
      if (step.graceUntil) {
        const left =
          now === undefined ? "" : ` (${formatDuration((Date.parse(step.graceUntil) - now) / 1000)} left)`;
        text += `, grace until ${clockTime(step.graceUntil)}${left}`;
      }
    }
    lines.push({ key: `${rootId}/${name}`, text });
  }
  return lines;
}

const ACTIVE: InstanceStatus["runtimeStatus"][] = ["Running", "Pending"];

/**
 * Follows rotateAll instances through their custom status (phase, state per account) and their
 * accounts' sub-orchestrations (step, grace) by polling the host. Always on stderr, so stdout keeps
 * only the result: on a terminal the view is redrawn in place; elsewhere (CI logs, pipes) each change
 * is one appended line.
 */
export class ProgressView {
  readonly #host: LocalHost;
  readonly #rootIds: string[];
  readonly #io: Io;
  readonly #intervalMs: number;
  readonly #seen = new Map<string, string>();
  #drawn: string[] = [];
  #timer: NodeJS.Timeout | undefined;

  constructor(host: LocalHost, rootIds: string[], io: Io, intervalMs = 250) {
    this.#host = host;
    this.#rootIds = rootIds;
    this.#io = io;
    this.#intervalMs = intervalMs;
  }

  start(): void {
    this.update();
    this.#timer = setInterval(() => this.update(), this.#intervalMs);
  }

  /** Draws the final state once more and stops polling. */
  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.update();
  }

  update(): void {
    const live = this.#io.errIsTTY;
    const running = this.#host.durable.list({ instanceIdPrefix: "keyturn-account-", runtimeStatus: ACTIVE });
    const lines = this.#rootIds.flatMap((id) =>
      progressLines(this.#host.durable.getStatus(id), running, id, live ? Date.now() : undefined),
    );
    if (live) this.#redraw(lines.map((l) => l.text));
    else this.#append(lines);
  }

  #append(lines: ProgressLine[]): void {
    for (const line of lines) {
      if (this.#seen.get(line.key) === line.text) continue;
      this.#seen.set(line.key, line.text);
      this.#io.err(`${line.text.trim()}\n`);
    }
  }

  #redraw(lines: string[]): void {
    // A wrapped line would throw the cursor arithmetic off by one, so lines are cut to the width.
    const columns = Math.max(20, (process.stderr.columns || 120) - 1);
    const shown = lines.map((l) => (l.length > columns ? `${l.slice(0, columns - 1)}…` : l));
    if (shown.length === this.#drawn.length && shown.every((l, i) => l === this.#drawn[i])) return;
    let text = this.#drawn.length > 0 ? `\x1b[${this.#drawn.length}F` : "";
    for (const line of shown) text += `\x1b[2K${line}\n`;
    // Lines left over from a longer earlier view.
    for (let i = shown.length; i < this.#drawn.length; i++) text += "\x1b[2K\n";
    const extra = Math.max(0, this.#drawn.length - shown.length);
    if (extra > 0) text += `\x1b[${extra}F`;
    this.#io.err(text);
    this.#drawn = shown;
  }
}

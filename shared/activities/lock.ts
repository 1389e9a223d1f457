import type { KeyName, StorageAccountSnapshot } from "../rotation";
import type { KeyReader } from "../azure/storage";
import { LOCK_BLOB, LOCK_CONTAINER, type LockSite } from "../azure/lock";
import { armTimeoutMs } from "../azure/pacing";
import { KeyturnError } from "../errors";
import { metered, type ActivityDeps } from "./deps";
import type {
  AccountLockOutcome,
  LockAccountInput,
  LockAccountOutput,
  UnlockAccountInput,
  UnlockAccountOutput,
} from "./contracts";

/**
 * The account lock (I5 across processes and machines) as the activities use it. It is taken, renewed
 * and let go with keys an activity reads anyway (the snapshot's, the moves'), so it costs no ARM call
 * on a rotation that runs its course; only an account that is not rotated after all pays one listKeys
 * to let it go.
 */

/**
 * Beyond the graces the orchestrator names: the key's propagation wait, a few lost requests' deadlines,
 * and room for a slow step (moves throttled on a large account). A holder silent past all of it is dead.
 */
const HOLD_MARGIN_MS = 30 * 60_000;

type AccountSite = Pick<StorageAccountSnapshot, "name" | "blobEndpoint">;

/** With the snapshot's keys: takes the lock for a rotation about to be planned. */
export async function takeLock(
  deps: ActivityDeps,
  account: AccountSite,
  reader: KeyReader,
  input: { rotationId: string; holdSeconds: number },
): Promise<AccountLockOutcome> {
  const lock = openLockOn(account, "key1", reader);
  if (!lock) return { acquired: true, unlocked: "the account has no blob service to hold a lock" };
  const hold = holdMs(deps, input.holdSeconds);
  const outcome = await lock.run((site) => deps.azure.locks.acquire(site, input.rotationId, hold));
  if (!outcome.acquired) return outcome;
  return {
    acquired: true,
    expiresAt: new Date(Date.now() + hold).toISOString(),
    ...(outcome.before.last ? { lastRotatedAt: outcome.before.last.finishedAt } : {}),
    ...(outcome.tookOverFrom !== undefined ? { tookOverFrom: outcome.tookOverFrom } : {}),
  };
}

export async function lockAccount(deps: ActivityDeps, input: LockAccountInput): Promise<LockAccountOutput> {
  return metered(deps, async () => {
    const account = await deps.azure.storage.getAccount(input.accountId);
    return takeLock(deps, account, deps.azure.storage.reader(input.accountId), input);
  });
}

export async function unlockAccount(
  deps: ActivityDeps,
  input: UnlockAccountInput,
): Promise<UnlockAccountOutput> {
  return metered(deps, async () => {
    await releaseLock(deps, input);
    return {};
  });
}

/** Keeps the account lock through the step ahead; a lost lock is thrown (nothing more may be written). */
export async function holdLock(
  deps: ActivityDeps,
  input: { accountId: string; rotationId: string; key: KeyName; holdSeconds: number },
  reader?: KeyReader,
): Promise<void> {
  const lock = await openLock(deps, input.accountId, input.key, reader);
  await lock?.run((site) => deps.azure.locks.hold(site, input.rotationId, holdMs(deps, input.holdSeconds)));
}

/**
 * Lets the account lock go; with an activity's reader, at no extra ARM call. `rotated`: both keys were
 * regenerated, and the lock records when (the keys' age where Azure records none).
 */
export async function releaseLock(
  deps: ActivityDeps,
  input: { accountId: string; rotationId: string; key: KeyName },
  reader?: KeyReader,
  rotated = false,
): Promise<void> {
  const lock = await openLock(deps, input.accountId, input.key, reader);
  await lock?.run((site) => deps.azure.locks.release(site, input.rotationId, rotated));
}

/**
 * When the last rotation recorded in the account's lock finished, for a plan (which takes no lock) of an
 * account whose keys Azure records no creation time of. Undefined when none is recorded or the lock
 * cannot be read: the keys' age is then unknown, as before.
 */
export async function lastRotatedAt(
  account: AccountSite,
  reader: KeyReader,
  deps: ActivityDeps,
): Promise<string | undefined> {
  const lock = openLockOn(account, "key1", reader);
  try {
    return (await lock?.run((site) => deps.azure.locks.read(site)))?.last?.finishedAt;
  } catch {
    return undefined;
  }
}

function holdMs(deps: ActivityDeps, holdSeconds: number): number {
  const deadline = deps.armTimeoutMs?.() ?? armTimeoutMs();
  return (holdSeconds + deps.config.keyPropagationSeconds) * 1000 + 4 * deadline + HOLD_MARGIN_MS;
}

interface OpenLock {
  /** Runs a lock operation with the preferred key, and with the other if the data plane refuses it. */
  run<T>(op: (site: LockSite) => Promise<T>): Promise<T>;
}

async function openLock(
  deps: ActivityDeps,
  accountId: string,
  prefer: KeyName,
  reader: KeyReader = deps.azure.storage.reader(accountId),
): Promise<OpenLock | undefined> {
  return openLockOn(await deps.azure.storage.getAccount(accountId), prefer, reader);
}

function openLockOn(account: AccountSite, prefer: KeyName, reader: KeyReader): OpenLock | undefined {
  const blobEndpoint = account.blobEndpoint;
  if (!blobEndpoint) return undefined;
  const other: KeyName = prefer === "key1" ? "key2" : "key1";
  const site = (key: string): LockSite => ({ blobEndpoint, accountName: account.name, key });
  return {
    async run(op) {
      try {
        try {
          return await op(site(await reader.value(prefer)));
        } catch (e) {
          // A key just regenerated may not have reached the data plane yet.
          if (statusOf(e) !== 403) throw e;
          return await op(site(await reader.value(other)));
        }
      } catch (e) {
        throw reader.scrub(e instanceof KeyturnError ? e : lockError(account.name, e));
      }
    },
  };
}

function lockError(accountName: string, e: unknown): KeyturnError {
  const code =
    typeof e === "object" && e !== null && "code" in e ? String((e as { code?: unknown }).code) : "";
  const status = statusOf(e);
  const what =
    status !== undefined ? `${status} ${code}` : code || (e instanceof Error ? e.message : String(e));
  return new KeyturnError(
    `the keyturn lock of storage account ${accountName} (blob ${LOCK_CONTAINER}/${LOCK_BLOB} in the account) could not be used: ${what}. keyturn needs the account's blob service to be reachable, as its probes do.`,
  );
}

function statusOf(e: unknown): number | undefined {
  return typeof e === "object" && e !== null && "statusCode" in e
    ? (e as { statusCode?: number }).statusCode
    : undefined;
}

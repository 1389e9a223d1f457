import { createHash } from "node:crypto";
import {
  BlobServiceClient,
  StorageSharedKeyCredential,
  type BlobLeaseClient,
  type BlockBlobClient,
} from "@azure/storage-blob";
import { KeyturnError } from "../errors";
import { armTimeoutMs } from "./pacing";

/**
 * The account lock (invariant I5 across processes and machines): a blob lease in the storage account
 * itself, so the deployed timer, the HTTP API and every CLI anywhere contend for the same thing, and
 * nothing but keyturn's existing permission (listKeys) is needed to take it.
 *
 * A blob lease lasts at most 60 s or forever, and a rotation sleeps through its grace with no code
 * running to renew anything, so the lease is infinite and the expiry is keyturn's own, in the blob's
 * metadata, pushed forward at every step. A holder past its expiry has died: its lease is broken.
 */
export const LOCK_CONTAINER = "keyturn-lock";
export const LOCK_BLOB = "rotation";

/** Where the lock lives and the key that opens it (a live key of the account itself). */
export interface LockSite {
  blobEndpoint: string;
  accountName: string;
  key: string;
}

export interface LockRecord {
  /** The rotation id holding the lock. */
  holder?: string;
  since?: string;
  expiresAt?: string;
  /**
   * The last rotation that regenerated both keys and let go: keyturn's own record of the keys' age, for
   * accounts whose keys Azure records no creation time of (classic accounts).
   */
  last?: { rotationId: string; finishedAt: string };
}

export type AcquireOutcome =
  | { acquired: true; before: LockRecord; tookOverFrom?: string }
  | { acquired: false; holder: string; since?: string; expiresAt?: string };

/** The lock was taken by another rotation after this one's expiry passed: nothing more may be written. */
export class LockLostError extends KeyturnError {}

export interface AccountLocks {
  acquire(site: LockSite, rotationId: string, holdMs: number): Promise<AcquireOutcome>;
  read(site: LockSite): Promise<LockRecord>;
  /**
   * Keeps the lock for `holdMs` more: renews it, or takes it again when this rotation let it go and
   * nobody took it since. LockLostError when another rotation holds it.
   */
  hold(site: LockSite, rotationId: string, holdMs: number): Promise<void>;
  /**
   * Lets go if still held by `rotationId`; `rotated`: it regenerated both keys, so it is recorded as the
   * last rotation (otherwise the last one recorded stays).
   */
  release(site: LockSite, rotationId: string, rotated?: boolean): Promise<void>;
}

/** A lease id is a GUID: one derived from the rotation id lets a resumed rotation take its own lock again. */
export function leaseIdOf(rotationId: string): string {
  const h = createHash("sha256").update(`keyturn-lock:${rotationId}`).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** Lease taken briefly first, so a holder that dies before it writes who it is leaves no lock behind. */
const FIRST_LEASE_SECONDS = 60;
/** Tries to get past a holder that is just writing its name, or a break that raced another. */
const ACQUIRE_TRIES = 3;
const UNNAMED_HOLDER_WAIT_MS = 2_000;

export class BlobAccountLocks implements AccountLocks {
  async acquire(site: LockSite, rotationId: string, holdMs: number): Promise<AcquireOutcome> {
    const blob = await this.lockBlob(site, true);
    const lease = blob.getBlobLeaseClient(leaseIdOf(rotationId));
    let seen: LockRecord = {};
    for (let attempt = 1; attempt <= ACQUIRE_TRIES; attempt++) {
      const before = await readRecord(blob);
      try {
        await lease.acquireLease(FIRST_LEASE_SECONDS);
      } catch (e) {
        if (statusOf(e) !== 409) throw e;
        const props = await blob.getProperties();
        seen = parseRecord(props.metadata);
        const expired = seen.expiresAt !== undefined && Date.parse(seen.expiresAt) < Date.now();
        if (!expired) {
          if (seen.holder !== undefined) return heldBy(seen);
          await sleep(UNNAMED_HOLDER_WAIT_MS);
          continue;
        }
        try {
          // Only the holder that was read: a newer holder has written its own metadata, so a new ETag.
          await blob.getBlobLeaseClient().breakLease(0, { conditions: { ifMatch: props.etag } });
        } catch (err) {
          if (statusOf(err) !== 412) throw err;
        }
        continue;
      }
      await writeHolder(blob, lease, before, rotationId, holdMs);
      await lease.acquireLease(-1);
      const tookOver =
        before.holder !== undefined && before.holder !== rotationId ? { tookOverFrom: before.holder } : {};
      return { acquired: true, before, ...tookOver };
    }
    return heldBy(seen);
  }

  async read(site: LockSite): Promise<LockRecord> {
    return readRecord(await this.lockBlob(site, false));
  }

  async hold(site: LockSite, rotationId: string, holdMs: number): Promise<void> {
    const blob = await this.lockBlob(site, false);
    const lease = blob.getBlobLeaseClient(leaseIdOf(rotationId));
    const before = await readRecord(blob);
    try {
      await lease.acquireLease(-1);
    } catch (e) {
      if (statusOf(e) !== 409 && statusOf(e) !== 404) throw e;
      const now = await readRecord(blob);
      throw new LockLostError(
        `the lock on storage account ${site.accountName} is no longer held by rotation ${rotationId}${now.holder ? `: rotation ${now.holder} holds it` : ""} (this rotation's expiry was ${before.expiresAt ?? "unknown"}). Nothing more was written; run keyturn again once that rotation ends.`,
      );
    }
    await writeHolder(blob, lease, before, rotationId, holdMs);
  }

  async release(site: LockSite, rotationId: string, rotated = false): Promise<void> {
    const blob = await this.lockBlob(site, false);
    const record = await readRecord(blob);
    if (record.holder !== rotationId) return;
    const lease: BlobLeaseClient = blob.getBlobLeaseClient(leaseIdOf(rotationId));
    try {
      const last = rotated
        ? { last: { rotationId, finishedAt: new Date().toISOString() } }
        : keepLast(record);
      await blob.setMetadata(toMetadata(last), {
        conditions: { leaseId: lease.leaseId },
      });
      await lease.releaseLease();
    } catch (e) {
      // Taken over after this rotation's expiry: not ours to release.
      if (statusOf(e) !== 412 && statusOf(e) !== 409) throw e;
    }
  }

  private async lockBlob(site: LockSite, create: boolean): Promise<BlockBlobClient> {
    const service = new BlobServiceClient(
      site.blobEndpoint,
      new StorageSharedKeyCredential(site.accountName, site.key),
      { retryOptions: { maxTries: 3, tryTimeoutInMs: armTimeoutMs() } },
    );
    const container = service.getContainerClient(LOCK_CONTAINER);
    const blob = container.getBlockBlobClient(LOCK_BLOB);
    if (create) {
      await container.createIfNotExists();
      try {
        await blob.upload("", 0, { conditions: { ifNoneMatch: "*" } });
      } catch (e) {
        // Already there (409 BlobAlreadyExists, or 412 while another holder leases it).
        if (statusOf(e) !== 409 && statusOf(e) !== 412) throw e;
      }
    }
    return blob;
  }
}

/** Names the holder and its expiry, under the lease (only the holder can write them). */
async function writeHolder(
  blob: BlockBlobClient,
  lease: BlobLeaseClient,
  before: LockRecord,
  rotationId: string,
  holdMs: number,
): Promise<void> {
  const now = new Date();
  await blob.setMetadata(
    toMetadata({
      ...keepLast(before),
      holder: rotationId,
      since: before.holder === rotationId && before.since ? before.since : now.toISOString(),
      expiresAt: new Date(now.getTime() + holdMs).toISOString(),
    }),
    { conditions: { leaseId: lease.leaseId } },
  );
}

async function readRecord(blob: BlockBlobClient): Promise<LockRecord> {
  try {
    return parseRecord((await blob.getProperties()).metadata);
  } catch (e) {
    if (statusOf(e) === 404) return {};
    throw e;
  }
}

function heldBy(record: LockRecord): AcquireOutcome {
  return {
    acquired: false,
    holder: record.holder ?? "a rotation that has not yet written its name",
    ...(record.since ? { since: record.since } : {}),
    ...(record.expiresAt ? { expiresAt: record.expiresAt } : {}),
  };
}

function keepLast(record: LockRecord): LockRecord {
  return record.last ? { last: record.last } : {};
}

/** Metadata names are case-insensitive identifiers and values ASCII: ids are URI-encoded. */
function toMetadata(record: LockRecord): Record<string, string> {
  const m: Record<string, string> = {};
  if (record.holder !== undefined) m.holder = encodeURIComponent(record.holder);
  if (record.since !== undefined) m.since = record.since;
  if (record.expiresAt !== undefined) m.expiresat = record.expiresAt;
  if (record.last) {
    m.lastrotation = encodeURIComponent(record.last.rotationId);
    m.lastfinished = record.last.finishedAt;
  }
  return m;
}

export function parseRecord(metadata: Record<string, string> | undefined): LockRecord {
  const m: Record<string, string> = {};
  for (const [k, v] of Object.entries(metadata ?? {})) m[k.toLowerCase()] = v;
  const record: LockRecord = {};
  if (m.holder) record.holder = decode(m.holder);
  if (m.since) record.since = m.since;
  if (m.expiresat) record.expiresAt = m.expiresat;
  if (m.lastrotation && m.lastfinished)
    record.last = { rotationId: decode(m.lastrotation), finishedAt: m.lastfinished };
  return record;
}

function decode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

function statusOf(e: unknown): number | undefined {
  return typeof e === "object" && e !== null && "statusCode" in e
    ? (e as { statusCode?: number }).statusCode
    : undefined;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

import { KeyturnError, scrubError } from "../errors";
import { sasFacts, signSas, signingKey, unsignableReason, type SasTarget } from "../azure/sas";
import type { DatastoreInfo } from "../azure/datastores";
import type { KeyReader } from "../azure/storage";
import {
  fingerprint,
  type Consumer,
  type Fingerprint,
  type KeyName,
  type KeySnapshot,
  type ProbeResult,
  type SasDatastoreConsumer,
} from "../rotation";
import type { ActivityDeps } from "./deps";

/**
 * SAS datastores (issue 10): a SAS signed with an account key dies with that key, so keyturn re-signs it
 * with the key that survives. The token is read, re-signed and written inside one activity; only the
 * fingerprint of the key that signed it leaves (I3).
 */

type DatastoreBase = Pick<Consumer, "id" | "name" | "storageAccountId"> & { workspaceId: string };

/** Discovery: which SAS datastores keyturn re-signs, and why it leaves the others as they are. */
export async function discoverSasDatastore(
  deps: ActivityDeps,
  base: DatastoreBase,
  ds: DatastoreInfo,
  now: Date,
): Promise<Consumer> {
  const token = await deps.azure.datastores.heldSas(ds.id);
  const untouched = (why: string): Consumer => ({ ...base, kind: "untouchedSasDatastore", why });
  if (!token) return untouched("its SAS secret is empty: nothing signed with a key to re-sign");
  try {
    const facts = sasFacts(token, now);
    if (facts.expired)
      return untouched(
        `its SAS expired at ${facts.expiresOn!.toISOString()}: it works with no key now; issue a new one`,
      );
    const reason = unsignableReason(token, sasTarget({ ...base, ...optionalContainer(ds.container) }));
    if (reason !== undefined) return untouched(reason);
    const st = new URLSearchParams(token).get("st");
    return {
      ...base,
      kind: "sasDatastore",
      ...optionalContainer(ds.container),
      ...(st !== null && !Number.isNaN(Date.parse(st)) ? { startsOn: new Date(st).toISOString() } : {}),
      ...(facts.expiresOn ? { expiresOn: facts.expiresOn.toISOString() } : {}),
    };
  } catch (e) {
    throw scrubError(e, [token]);
  }
}

/** Snapshot: the fingerprint of the key that signed the SAS, or none when neither live key did. */
export async function sasSignedWith(
  deps: ActivityDeps,
  consumer: SasDatastoreConsumer,
  keys: KeyReader,
  snapshot: Record<KeyName, KeySnapshot>,
): Promise<Fingerprint | undefined> {
  const token = await deps.azure.datastores.heldSas(consumer.id);
  if (!token) return undefined;
  try {
    const values = { key1: await keys.value("key1"), key2: await keys.value("key2") };
    const signedWith = signingKey(token, sasTarget(consumer), values);
    return signedWith !== undefined ? snapshot[signedWith].fingerprint : undefined;
  } catch (e) {
    throw scrubError(keys.scrub(e), [token]);
  }
}

/** Move: the same SAS signed with the target key, written in place; nothing written if it already is. */
export async function resignSas(
  deps: ActivityDeps,
  consumer: SasDatastoreConsumer,
  target: () => Promise<string>,
): Promise<void> {
  const token = await deps.azure.datastores.heldSas(consumer.id);
  if (!token) throw new KeyturnError(`datastore ${consumer.name} holds no SAS any more: nothing to re-sign`);
  let resigned: string | undefined;
  try {
    resigned = signSas(token, sasTarget(consumer), await target());
    if (resigned === undefined) {
      throw new KeyturnError(
        `the SAS of datastore ${consumer.name} changed since discovery and can no longer be re-signed as it is: ${unsignableReason(token, sasTarget(consumer)) ?? "unknown form"}. Nothing was written; re-sign it by hand or run keyturn again`,
      );
    }
    if (sig(resigned) === sig(token)) return;
    await deps.azure.datastores.putSas(consumer.id, resigned);
  } catch (e) {
    throw scrubError(e, resigned !== undefined ? [token, resigned] : [token]);
  }
}

/**
 * Verification: whether the target key signed the SAS the datastore holds now (the other key's
 * fingerprint when that one did), and a data-plane probe with the SAS itself.
 */
export async function observeSas(
  deps: ActivityDeps,
  consumer: SasDatastoreConsumer,
  to: { key: KeyName; fingerprint: Fingerprint },
  keys: KeyReader,
  salt: string,
  blobEndpoint: () => Promise<string | undefined>,
): Promise<{ heldFingerprint?: Fingerprint; probe?: ProbeResult }> {
  const token = await deps.azure.datastores.heldSas(consumer.id);
  if (!token) return {};
  try {
    const values = { key1: await keys.value("key1"), key2: await keys.value("key2") };
    const signedWith = signingKey(token, sasTarget(consumer), values);
    if (signedWith === undefined) return {};
    const held = fingerprint(values[signedWith], salt);
    if (held !== to.fingerprint) return { heldFingerprint: held };
    const endpoint = await blobEndpoint();
    if (!endpoint) return { heldFingerprint: held, probe: "not-probed" };
    const outcome = await deps.azure.probe.probe({
      blobEndpoint: endpoint,
      accountName: accountNameOf(consumer.storageAccountId),
      ...optionalContainer(consumer.container),
      sas: token,
    });
    const probe: ProbeResult =
      outcome.ok === true
        ? "ok"
        : outcome.ok === "skipped"
          ? "not-probed"
          : outcome.status === 403
            ? "denied"
            : "failed";
    return { heldFingerprint: held, probe };
  } catch (e) {
    throw scrubError(keys.scrub(e), [token]);
  }
}

function sasTarget(consumer: { storageAccountId: string; container?: string }): SasTarget {
  return {
    accountName: accountNameOf(consumer.storageAccountId),
    ...optionalContainer(consumer.container),
  };
}

function optionalContainer(container: string | undefined): { container?: string } {
  return container !== undefined ? { container } : {};
}

/** Discovery knows a datastore's account by name; later steps may carry the ARM id. */
function accountNameOf(storageAccountId: string): string {
  return storageAccountId.split("/").pop() ?? storageAccountId;
}

function sig(token: string): string | null {
  return new URLSearchParams(token).get("sig");
}

import {
  AccountSASPermissions,
  ContainerSASPermissions,
  SASProtocol,
  StorageSharedKeyCredential,
  generateAccountSASQueryParameters,
  generateBlobSASQueryParameters,
  type SasIPRange,
} from "@azure/storage-blob";

/**
 * SAS tokens of SAS datastores: which account key signed one, and the same token signed with another
 * key. A SAS is a credential as much as the key that signed it (I3): tokens are spent inside the activity
 * that read them and never returned; callers keep fingerprints of the signing key only.
 *
 * Signatures are made by the Storage SDK, never by hand. A token is re-signed only when the SDK, given its
 * fields, writes back exactly the same fields: then the new token grants the same resource, permissions
 * and expiry, and only `sig` differs. A token in any other form (dates with fractions, an unusual
 * permission order, a field the SDK does not sign) is reported instead.
 */

/** What a SAS is, from its fields alone (no key needed). */
export type SasKind =
  | { type: "account" }
  /** A service SAS on the datastore's container. */
  | { type: "container" }
  | { type: "userDelegation" }
  /** A service SAS on one blob, directory or snapshot: keyturn cannot re-sign it (the token does not name the blob). */
  | { type: "otherService"; resource: string }
  | { type: "unreadable"; reason: string };

export interface SasFacts {
  kind: SasKind;
  /** `se` as an instant; undefined when absent or unreadable. */
  expiresOn?: Date;
}

/** Where a service SAS applies: the account and container the datastore names. */
export interface SasTarget {
  accountName: string;
  container?: string;
}

export function sasFacts(token: string, now: Date = new Date()): SasFacts & { expired: boolean } {
  const params = new URLSearchParams(token.replace(/^\?/, ""));
  const se = params.get("se");
  const expiresOn = se !== null && !Number.isNaN(Date.parse(se)) ? new Date(se) : undefined;
  const facts = { kind: kindOf(params), ...(expiresOn ? { expiresOn } : {}) };
  return { ...facts, expired: expiresOn !== undefined && expiresOn.getTime() <= now.getTime() };
}

function kindOf(params: URLSearchParams): SasKind {
  if (!params.get("sig")) return { type: "unreadable", reason: "it has no signature (sig)" };
  if (!params.get("se") && !params.get("si"))
    return { type: "unreadable", reason: "it has no expiry (se) and no stored access policy (si)" };
  if (params.has("skoid")) return { type: "userDelegation" };
  if (params.has("ss") || params.has("srt")) return { type: "account" };
  const sr = params.get("sr");
  if (sr === "c") return { type: "container" };
  if (sr) return { type: "otherService", resource: sr };
  return { type: "unreadable", reason: "it names neither services (ss) nor a resource (sr)" };
}

/**
 * The token signed with `key`, with every other field as it was; undefined when the SDK would not write
 * the same fields back (so a signature of this token could not be reproduced either).
 */
export function signSas(token: string, target: SasTarget, key: string): string | undefined {
  const original = new URLSearchParams(token.replace(/^\?/, ""));
  const credential = new StorageSharedKeyCredential(target.accountName, key);
  let signed: URLSearchParams;
  try {
    const kind = kindOf(original).type;
    if (kind === "account") signed = accountSas(original, credential);
    else if (kind === "container" && target.container)
      signed = containerSas(original, target.container, credential);
    else return undefined;
  } catch {
    // The SDK refuses a field (a permission letter it does not know, a bad date): not reproducible.
    return undefined;
  }
  return sameFieldsBut("sig", original, signed) ? signed.toString() : undefined;
}

/** Which of the keys signed the token: the one whose signature of its fields is the token's own. */
export function signingKey<K extends string>(
  token: string,
  target: SasTarget,
  keys: Record<K, string>,
): K | undefined {
  const sig = new URLSearchParams(token.replace(/^\?/, "")).get("sig");
  for (const name of Object.keys(keys) as K[]) {
    const signed = signSas(token, target, keys[name]);
    if (signed !== undefined && new URLSearchParams(signed).get("sig") === sig) return name;
  }
  return undefined;
}

/** Why a token cannot be re-signed with the SDK, for the report; undefined when it can. */
export function unsignableReason(token: string, target: SasTarget): string | undefined {
  const kind = kindOf(new URLSearchParams(token.replace(/^\?/, "")));
  switch (kind.type) {
    case "userDelegation":
      return "a user delegation SAS: signed with an Entra ID delegation key, not an account key, so key rotation does not affect it";
    case "otherService":
      return `a service SAS on a ${kind.resource === "b" ? "blob" : `resource of type ${kind.resource}`}, not on the datastore's container: re-sign it by hand`;
    case "unreadable":
      return `not a SAS keyturn can read: ${kind.reason}`;
    case "container":
      if (!target.container) return "a container SAS on a datastore that names no container";
  }
  // Any key will do to learn whether the SDK reproduces the fields: only `sig` depends on it.
  if (signSas(token, target, Buffer.alloc(32).toString("base64")) === undefined)
    return "its fields are not in the form the Storage SDK signs (e.g. dates with fractions of a second): re-sign it by hand";
  return undefined;
}

function accountSas(original: URLSearchParams, credential: StorageSharedKeyCredential): URLSearchParams {
  const se = original.get("se");
  if (se === null) throw new Error("an account SAS has an expiry");
  const sas = generateAccountSASQueryParameters(
    {
      ...common(original),
      expiresOn: new Date(se),
      permissions: AccountSASPermissions.parse(original.get("sp") ?? ""),
      services: original.get("ss") ?? "",
      resourceTypes: original.get("srt") ?? "",
    },
    credential,
  );
  return new URLSearchParams(sas.toString());
}

function containerSas(
  original: URLSearchParams,
  containerName: string,
  credential: StorageSharedKeyCredential,
): URLSearchParams {
  const sp = original.get("sp");
  const si = original.get("si");
  const rsc = (name: string) => original.get(name) ?? undefined;
  const sas = generateBlobSASQueryParameters(
    {
      ...common(original),
      containerName,
      ...(sp !== null ? { permissions: ContainerSASPermissions.parse(sp) } : {}),
      ...(si !== null ? { identifier: si } : {}),
      ...optional({
        cacheControl: rsc("rscc"),
        contentDisposition: rsc("rscd"),
        contentEncoding: rsc("rsce"),
        contentLanguage: rsc("rscl"),
        contentType: rsc("rsct"),
      }),
    },
    credential,
  );
  return new URLSearchParams(sas.toString());
}

/** The fields account and service SAS share. */
function common(original: URLSearchParams) {
  const date = (name: string) => {
    const value = original.get(name);
    return value !== null ? new Date(value) : undefined;
  };
  const spr = original.get("spr");
  const sip = original.get("sip");
  return optional({
    version: original.get("sv") ?? undefined,
    startsOn: date("st"),
    expiresOn: date("se"),
    protocol: spr === "https" ? SASProtocol.Https : spr !== null ? SASProtocol.HttpsAndHttp : undefined,
    ipRange: sip !== null ? ipRange(sip) : undefined,
    encryptionScope: original.get("ses") ?? undefined,
  });
}

function ipRange(sip: string): SasIPRange {
  const [start = "", end] = sip.split("-");
  return end !== undefined ? { start, end } : { start };
}

function optional<T extends Record<string, unknown>>(
  fields: T,
): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)) as {
    [K in keyof T]?: Exclude<T[K], undefined>;
  };
}

function sameFieldsBut(skip: string, a: URLSearchParams, b: URLSearchParams): boolean {
  const fields = (p: URLSearchParams) =>
    [...p.entries()]
      .filter(([k]) => k !== skip)
      .map(([k, v]) => `${k}=${v}`)
      .sort()
      .join("&");
  return fields(a) === fields(b);
}

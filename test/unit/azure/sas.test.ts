import { randomBytes } from "node:crypto";
import {
  AccountSASPermissions,
  ContainerSASPermissions,
  SASProtocol,
  StorageSharedKeyCredential,
  generateAccountSASQueryParameters,
  generateBlobSASQueryParameters,
} from "@azure/storage-blob";
import fc from "fast-check";
import { sasFacts, signSas, signingKey, unsignableReason } from "../../../shared/azure/sas";

const target = { accountName: "stmllake", container: "partner" };
const keys = { key1: randomBytes(64).toString("base64"), key2: randomBytes(64).toString("base64") };
const expiresOn = new Date("2027-06-01T00:00:00Z");

function accountSas(
  key: string,
  extra: { protocol?: SASProtocol; ipRange?: { start: string; end?: string } } = {},
) {
  return generateAccountSASQueryParameters(
    {
      expiresOn,
      startsOn: new Date("2026-11-01T08:00:00Z"),
      permissions: AccountSASPermissions.parse("rl"),
      services: "b",
      resourceTypes: "sco",
      ...extra,
    },
    new StorageSharedKeyCredential(target.accountName, key),
  ).toString();
}

function containerSas(key: string, options: { identifier?: string; permissions?: string } = {}) {
  return generateBlobSASQueryParameters(
    {
      containerName: target.container,
      expiresOn,
      ...(options.permissions !== undefined || options.identifier === undefined
        ? { permissions: ContainerSASPermissions.parse(options.permissions ?? "rl") }
        : {}),
      ...(options.identifier ? { identifier: options.identifier } : {}),
    },
    new StorageSharedKeyCredential(target.accountName, key),
  ).toString();
}

describe("SAS tokens of SAS datastores", () => {
  it("tells which key signed an account SAS", () => {
    expect(signingKey(accountSas(keys.key1), target, keys)).toBe("key1");
    expect(signingKey(accountSas(keys.key2), target, keys)).toBe("key2");
  });

  it("tells which key signed a container SAS, with or without a stored access policy", () => {
    expect(signingKey(containerSas(keys.key2), target, keys)).toBe("key2");
    expect(signingKey(containerSas(keys.key1, { identifier: "readers" }), target, keys)).toBe("key1");
  });

  it("finds no signing key for a SAS signed with a key the account no longer has", () => {
    const dead = randomBytes(64).toString("base64");
    expect(signingKey(accountSas(dead), target, keys)).toBeUndefined();
  });

  it("re-signs with the surviving key and keeps resource, permissions and expiry", () => {
    const old = accountSas(keys.key1, {
      protocol: SASProtocol.Https,
      ipRange: { start: "10.0.0.1", end: "10.0.0.9" },
    });
    const resigned = signSas(old, target, keys.key2)!;
    expect(signingKey(resigned, target, keys)).toBe("key2");
    const before = new URLSearchParams(old);
    const after = new URLSearchParams(resigned);
    for (const field of ["sv", "ss", "srt", "sp", "st", "se", "spr", "sip"]) {
      expect([field, after.get(field)]).toEqual([field, before.get(field)]);
    }
    expect(after.get("sig")).not.toBe(before.get("sig"));
  });

  it("refuses to re-sign a token whose fields the SDK would write differently", () => {
    // Same instant, another spelling: the service signed the string as written, so no reproduction.
    const old = accountSas(keys.key1).replace(/se=[^&]+/, "se=2027-06-01T00%3A00%3A00.0000000Z");
    expect(signSas(old, target, keys.key2)).toBeUndefined();
    expect(unsignableReason(old, target)).toMatch(/not in the form the Storage SDK signs/);
  });

  it("does not touch user delegation SAS or SAS on one blob", () => {
    const delegation = `${containerSas(keys.key1)}&skoid=${randomBytes(4).toString("hex")}`;
    expect(unsignableReason(delegation, target)).toMatch(/user delegation SAS/);
    expect(signSas(delegation, target, keys.key2)).toBeUndefined();
    const blob = containerSas(keys.key1).replace("sr=c", "sr=b");
    expect(unsignableReason(blob, target)).toMatch(/service SAS on a blob/);
  });

  it("reads the expiry, and whether it has passed", () => {
    const sas = accountSas(keys.key1);
    expect(sasFacts(sas, new Date("2027-05-31T00:00:00Z"))).toMatchObject({ expired: false, expiresOn });
    expect(sasFacts(sas, new Date("2027-06-02T00:00:00Z")).expired).toBe(true);
    expect(unsignableReason(sas, target)).toBeUndefined();
  });

  it("names what is wrong with a token that is not a SAS", () => {
    expect(unsignableReason("sv=2024-08-04&se=2027-01-01", target)).toMatch(/no signature/);
    expect(unsignableReason("", target)).toMatch(/not a SAS keyturn can read/);
  });

  it("re-signs any container SAS permissions the SDK writes in its own order", () => {
    fc.assert(
      fc.property(fc.subarray(["r", "a", "c", "w", "d", "l"], { minLength: 1 }), (letters) => {
        const sp = ContainerSASPermissions.parse(letters.join("")).toString();
        const old = containerSas(keys.key1, { permissions: sp });
        const resigned = signSas(old, target, keys.key2);
        expect(resigned).toBeDefined();
        expect(new URLSearchParams(resigned).get("sp")).toBe(sp);
        expect(signingKey(resigned!, target, keys)).toBe("key2");
      }),
      { numRuns: 30 },
    );
  });
});

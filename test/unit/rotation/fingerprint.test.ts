import { fingerprint, isFingerprint, stableDigest } from "../../../shared/rotation";
import { newKeyValue } from "./builders";

describe("fingerprint", () => {
  it("is 12 lowercase hex characters", () => {
    expect(fingerprint(newKeyValue(), "salt")).toMatch(/^[0-9a-f]{12}$/);
  });

  it("gives the same key the same fingerprint under one salt", () => {
    const key = newKeyValue();
    expect(fingerprint(key, "salt")).toBe(fingerprint(key, "salt"));
  });

  it("tells two keys apart", () => {
    expect(fingerprint(newKeyValue(), "salt")).not.toBe(fingerprint(newKeyValue(), "salt"));
  });

  it("differs between salts, so tenants cannot correlate keys", () => {
    const key = newKeyValue();
    expect(fingerprint(key, "tenant-a")).not.toBe(fingerprint(key, "tenant-b"));
  });

  it("contains no part of the key", () => {
    const key = "fake-key-abcdef0123456789";
    expect(key).not.toContain(fingerprint(key, "salt"));
  });

  it("refuses an empty salt without echoing the key", () => {
    const key = newKeyValue();
    expect(() => fingerprint(key, "")).toThrow(/salt is empty/);
    try {
      fingerprint(key, "");
    } catch (error) {
      expect((error as Error).message).not.toContain(key);
    }
  });

  it("refuses an empty key value", () => {
    expect(() => fingerprint("", "salt")).toThrow(/empty key value/);
  });

  it("recognizes fingerprints and nothing else", () => {
    expect(isFingerprint(fingerprint("fake", "salt"))).toBe(true);
    expect(isFingerprint("ABCDEF012345")).toBe(false);
    expect(isFingerprint("abc")).toBe(false);
    expect(isFingerprint(42)).toBe(false);
  });
});

describe("stableDigest", () => {
  it("is stable and of the requested length", () => {
    expect(stableDigest("/subscriptions/x")).toBe(stableDigest("/subscriptions/x"));
    expect(stableDigest("/subscriptions/x", 8)).toHaveLength(8);
  });
});

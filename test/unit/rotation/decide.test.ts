import { classifyHolding, decideActiveKey, newerKey } from "../../../shared/rotation";
import { account, batch, datastore, fp, secret, workspace } from "./builders";

describe("decideActiveKey", () => {
  it("picks the key every voting consumer holds", () => {
    const st = account();
    const d = decideActiveKey(st, [datastore(st, "a", "key2"), secret(st, "s", "key2")]);
    expect(d).toMatchObject({ activeKey: "key2", standbyKey: "key1", basis: "unanimous", normalize: [] });
    expect(d.why).toBe("2 voting consumers all hold key2");
  });

  it("does not assume key1 is the active key", () => {
    const st = account();
    expect(decideActiveKey(st, [datastore(st, "a", "key2")]).activeKey).toBe("key2");
  });

  it("normalizes split voters to the key the majority holds", () => {
    const st = account();
    const minority = datastore(st, "b", "key1");
    const d = decideActiveKey(st, [datastore(st, "a", "key2"), minority, secret(st, "s", "key2")]);
    expect(d).toMatchObject({ activeKey: "key2", basis: "majority", normalize: [minority.id] });
    expect(d.votes).toEqual({ key1: 1, key2: 2 });
  });

  it("breaks a tie in favour of the newer key", () => {
    const st = account("st", { key1Created: "2025-01-01T00:00:00Z", key2Created: "2025-03-01T00:00:00Z" });
    const d = decideActiveKey(st, [datastore(st, "a", "key1"), datastore(st, "b", "key2")]);
    expect(d).toMatchObject({ activeKey: "key2", basis: "tie-newer-key" });
    expect(d.normalize).toEqual([datastore(st, "a").id]);
  });

  it("breaks a tie in favour of key1 when creation times are unknown", () => {
    const st = account("st", { key1Created: undefined, key2Created: undefined });
    const d = decideActiveKey(st, [datastore(st, "a", "key1"), datastore(st, "b", "key2")]);
    expect(d).toMatchObject({ activeKey: "key1", basis: "tie-key1" });
  });

  it("lets only datastores and Key Vault secrets vote, not the service-chosen consumers", () => {
    const st = account();
    const d = decideActiveKey(st, [
      workspace(st, "w1", "key1"),
      workspace(st, "w2", "key1"),
      datastore(st, "a", "key2"),
    ]);
    expect(d).toMatchObject({ activeKey: "key2", basis: "unanimous", normalize: [] });
  });

  it("marks consumers holding neither key as broken without counting their vote", () => {
    const st = account();
    const dead = datastore(st, "dead", "dead");
    const d = decideActiveKey(st, [dead, datastore(st, "a", "key2")]);
    expect(d).toMatchObject({ activeKey: "key2", broken: [dead.id], votes: { key1: 0, key2: 1 } });
    expect(d.holdings.find((h) => h.id === dead.id)?.holds).toBe("neither");
  });

  it("counts a secret that was never published as holding nothing", () => {
    const st = account();
    const d = decideActiveKey(st, [secret(st, "new", "nothing"), datastore(st, "a", "key2")]);
    expect(d.holdings.map((h) => h.holds)).toEqual(["unknown", "key2"]);
    expect(d.broken).toEqual([]);
  });

  it("follows the workspace's key when no voting consumer holds one", () => {
    const st = account("st", { key1Created: "2025-01-01T00:00:00Z", key2Created: "2024-01-01T00:00:00Z" });
    const d = decideActiveKey(st, [workspace(st, "w", "key1"), datastore(st, "dead", "dead")]);
    expect(d).toMatchObject({ activeKey: "key1", basis: "service-chosen" });
  });

  it("assumes the older key is active when no consumer holds either key", () => {
    const st = account("st", { key1Created: "2025-05-01T00:00:00Z", key2Created: "2025-04-01T00:00:00Z" });
    const d = decideActiveKey(st, [batch(st)]);
    expect(d).toMatchObject({ activeKey: "key2", standbyKey: "key1", basis: "older-key" });
  });

  it("falls back to key1 when nothing tells the keys apart", () => {
    const st = account("st", { key1Created: undefined });
    expect(decideActiveKey(st, [])).toMatchObject({ activeKey: "key1", basis: "default-key1" });
  });

  it("explains every decision in one sentence", () => {
    const st = account();
    expect(decideActiveKey(st, [datastore(st, "a", "key1")]).why).toBe("1 voting consumer holds key1");
  });
});

describe("classifyHolding", () => {
  it("says which key a fingerprint is, if any", () => {
    const st = account();
    expect(classifyHolding(st.keys.key1.fingerprint, st.keys)).toBe("key1");
    expect(classifyHolding(st.keys.key2.fingerprint, st.keys)).toBe("key2");
    expect(classifyHolding(fp("fake"), st.keys)).toBe("neither");
    expect(classifyHolding(undefined, st.keys)).toBe("unknown");
  });
});

describe("newerKey", () => {
  it("ignores unparsable creation times", () => {
    expect(newerKey(account("st", { key1Created: "yesterday" }))).toBeUndefined();
  });
});

import { buildConsumerGraph, isAccountInScope, type Consumer } from "../../../shared/rotation";
import { account, batch, datastore, secret, storageAccountId, workspace } from "./builders";

describe("buildConsumerGraph", () => {
  it("groups consumers under their storage account whatever the id casing", () => {
    const st = account("stdata01");
    const upper = { ...datastore(st, "ds1"), storageAccountId: st.id.toUpperCase() };
    const graph = buildConsumerGraph([st], [upper, workspace(st)]);
    expect(graph.accounts).toHaveLength(1);
    expect(graph.accounts[0]?.consumers.map((c) => c.name)).toEqual(["mlw-one", "ds1"]);
    expect(graph.unattached).toEqual([]);
  });

  it("matches a consumer that only knows the account's name", () => {
    const st = account("stdata01");
    const byName = { ...datastore(st, "ds1"), storageAccountId: "STDATA01" };
    expect(buildConsumerGraph([st], [byName]).accounts[0]?.consumers).toEqual([byName]);
  });

  it("matches by name when the recorded resource group is stale after a move", () => {
    const st = account("stdata01", { resourceGroup: "rg-new" });
    const stale = {
      ...datastore(st, "ds1"),
      storageAccountId: storageAccountId("stdata01", undefined, "rg-old"),
    };
    expect(buildConsumerGraph([st], [stale]).accounts[0]?.consumers).toHaveLength(1);
  });

  it("reports a consumer whose account was not found instead of dropping it", () => {
    const st = account("stdata01");
    const gone = { ...datastore(st, "ds-gone"), storageAccountId: storageAccountId("stdeleted") };
    const graph = buildConsumerGraph([st], [gone]);
    expect(graph.accounts[0]?.consumers).toEqual([]);
    expect(graph.unattached).toEqual([
      {
        consumer: gone,
        code: "not-found",
        reason: expect.stringContaining('"stdeleted" was not found') as string,
      },
    ]);
  });

  it("reports a bare account name matching two discovered accounts as ambiguous", () => {
    const a = account("stdup", { subscriptionId: "00000000-0000-0000-0000-00000000000a" });
    const b = account("stdup", { subscriptionId: "00000000-0000-0000-0000-00000000000b" });
    const consumer = { ...datastore(a, "ds1"), storageAccountId: "stdup" };
    const graph = buildConsumerGraph([a, b], [consumer]);
    expect(graph.unattached.map((u) => u.code)).toEqual(["ambiguous"]);
  });

  it("moves the consumers of an out-of-scope account to the report as out of scope", () => {
    const inside = account("stinside");
    const outside = account("stoutside");
    const graph = buildConsumerGraph(
      [inside, outside],
      [datastore(inside, "ds1"), datastore(outside, "ds2")],
      {
        inScope: (n) => isAccountInScope({ storageAccounts: ["stinside"] }, n),
      },
    );
    expect(graph.accounts.map((n) => n.account.name)).toEqual(["stinside"]);
    expect(graph.unattached.map((u) => [u.consumer.name, u.code])).toEqual([["ds2", "out-of-scope"]]);
  });

  it("keeps an account without consumers, for policy to skip with a reason", () => {
    const graph = buildConsumerGraph([account("stlonely")], []);
    expect(graph.accounts[0]?.consumers).toEqual([]);
  });

  it("drops duplicate accounts and consumers seen by two discovery branches", () => {
    const st = account("stdata01");
    const ds = datastore(st, "ds1");
    const graph = buildConsumerGraph(
      [st, { ...st, id: st.id.toLowerCase() }],
      [ds, { ...ds, id: ds.id.toUpperCase() }],
    );
    expect(graph.accounts).toHaveLength(1);
    expect(graph.accounts[0]?.consumers).toHaveLength(1);
  });

  it("produces the same graph whatever order discovery returned things in", () => {
    const a = account("sta");
    const b = account("stb");
    const consumers: Consumer[] = [
      datastore(b, "z"),
      secret(a, "s"),
      batch(a),
      datastore(a, "y"),
      workspace(b),
    ];
    const one = buildConsumerGraph([a, b], consumers);
    const two = buildConsumerGraph([b, a], [...consumers].reverse());
    expect(two).toEqual(one);
    expect(one.accounts[0]?.consumers.map((c) => c.kind)).toEqual([
      "batchAutoStorage",
      "datastore",
      "keyVaultSecret",
    ]);
  });
});

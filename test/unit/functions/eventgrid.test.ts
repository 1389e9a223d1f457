import { readNearExpiry, SECRET_NEAR_EXPIRY, vaultsNamed } from "../../../functions/eventgrid";

const nearExpiry = (data: Record<string, unknown>, subject = "stmlbatch-key") => ({
  id: "e-1",
  topic: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv-keyturn",
  subject,
  eventType: SECRET_NEAR_EXPIRY,
  eventTime: "2025-02-05T03:00:00Z",
  dataVersion: "1",
  metadataVersion: "1",
  data,
});

describe("readNearExpiry: what a SecretNearExpiry event names", () => {
  it("reads the vault, the secret and the version from Key Vault's data", () => {
    expect(
      readNearExpiry(
        nearExpiry({
          Id: "https://kv-keyturn.vault.azure.net/secrets/stmlbatch-key/abc",
          VaultName: "kv-keyturn",
          ObjectType: "Secret",
          ObjectName: "stmlbatch-key",
          Version: "abc",
          NBF: null,
          EXP: 1741143600,
        }),
      ),
    ).toEqual({ vaultName: "kv-keyturn", secretName: "stmlbatch-key", version: "abc" });
  });

  it("falls back to the subject for the secret's name", () => {
    expect(readNearExpiry(nearExpiry({ VaultName: "kv" }, "s1"))).toEqual({
      vaultName: "kv",
      secretName: "s1",
      version: "",
    });
  });

  it("ignores other event types, keys and certificates, and events naming no vault", () => {
    const ignored = (event: Parameters<typeof readNearExpiry>[0]) => {
      const read = readNearExpiry(event);
      return "ignored" in read ? read.ignored : "(read)";
    };
    expect(
      ignored({ ...nearExpiry({ VaultName: "kv" }), eventType: "Microsoft.KeyVault.SecretExpired" }),
    ).toContain("Microsoft.KeyVault.SecretExpired");
    expect(ignored(nearExpiry({ VaultName: "kv", ObjectType: "Key" }))).toContain("not a secret");
    expect(ignored(nearExpiry({}))).toContain("VaultName");
  });
});

describe("vaultsNamed: which configured vaults an event's VaultName can be", () => {
  const urls = [
    "https://kv-keyturn.vault.azure.net/",
    "https://KV-Other.vault.usgovcloudapi.net/",
    "https://127.0.0.1:44123/",
  ];

  it("a vault named by its host, in any cloud and any case, and vaults whose host names none", () => {
    expect(vaultsNamed(urls, "kv-keyturn")).toEqual([urls[0], urls[2]]);
    expect(vaultsNamed(urls, "kv-other")).toEqual([urls[1], urls[2]]);
    expect(vaultsNamed(urls.slice(0, 2), "kv-elsewhere")).toEqual([]);
  });
});

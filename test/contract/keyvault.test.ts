import { randomBytes } from "node:crypto";
import type { RestError } from "@azure/core-rest-pipeline";
import { SecretClient } from "@azure/keyvault-secrets";
import type { Emulator } from "../../emulator";
import { credentialFor, principalWith, startTestEmulator, type Clients } from "../helpers/emulator";

/**
 * Key Vault secrets contract: the real `@azure/keyvault-secrets` SecretClient with a real
 * ClientSecretCredential against the emulator's per-vault HTTPS listener.
 */

const VAULT = "kv-keyturn-demo";
const SET = "Microsoft.KeyVault/vaults/secrets/setSecret/action";
const GET = "Microsoft.KeyVault/vaults/secrets/getSecret/action";
const READ_METADATA = "Microsoft.KeyVault/vaults/secrets/readMetadata/action";
const UPDATE = "Microsoft.KeyVault/vaults/secrets/update/action";
const DELETE = "Microsoft.KeyVault/vaults/secrets/delete";
const RECOVER = "Microsoft.KeyVault/vaults/secrets/recover/action";
const PURGE = "Microsoft.KeyVault/vaults/secrets/purge/action";

/** A throwaway value; hex, so nothing here is shaped like a storage key. */
const value = (): string => randomBytes(20).toString("hex");
const uniqueName = (prefix: string): string => `${prefix}-${randomBytes(4).toString("hex")}`;

async function restError(promise: Promise<unknown>): Promise<RestError> {
  try {
    await promise;
  } catch (e) {
    // Duck-typed: the SDK may carry its own copy of core-rest-pipeline.
    if (e instanceof Error && e.name === "RestError") return e;
    throw e;
  }
  throw new Error("expected the call to fail");
}

describe("Key Vault secrets (contract, @azure/keyvault-secrets)", () => {
  let emulator: Emulator;
  /** keyturn's own principal: exactly setSecret + getSecret (infra/keyturn-role.json). */
  let keyturn: SecretClient;
  /** A principal with the data actions a secrets officer has. */
  let officer: SecretClient;
  let vaultUrl: string;

  beforeAll(async () => {
    const started = await startTestEmulator();
    emulator = started.emulator;
    keyturn = started.clients.secrets(VAULT);
    officer = principalWith(emulator, [], [SET, GET, READ_METADATA, UPDATE, DELETE, RECOVER, PURGE]).secrets(
      VAULT,
    );
    vaultUrl = emulator.connection.vaults[VAULT]!;
  });

  afterAll(async () => {
    await emulator?.stop();
  });

  it("completes the challenge handshake: set, then get the same secret", async () => {
    const name = uniqueName("handshake");
    const secretValue = value();
    const set = await keyturn.setSecret(name, secretValue);
    expect(set.value).toBe(secretValue);
    expect(set.name).toBe(name);
    expect(set.properties.vaultUrl).toBe(vaultUrl.replace(/\/$/, ""));
    expect(set.properties.id).toBe(`${vaultUrl}secrets/${name}/${set.properties.version}`);
    expect(set.properties.version).toMatch(/^[0-9a-f]{32}$/);
    expect(set.properties.enabled).toBe(true);
    expect(set.properties.createdOn).toBeInstanceOf(Date);
    expect(set.properties.recoveryLevel).toBe("Recoverable+Purgeable");
    expect(set.properties.recoverableDays).toBe(90);

    const got = await keyturn.getSecret(name);
    expect(got.value).toBe(secretValue);
    expect(got.properties.version).toBe(set.properties.version);
  });

  it("a new client on api-version 7.4 gets through its own challenge too", async () => {
    const name = uniqueName("fresh");
    await keyturn.setSecret(name, value());
    const credential = credentialFor(emulator.connection, emulator.caCert);
    const fresh = new SecretClient(vaultUrl, credential, {
      disableChallengeResourceVerification: true,
      tlsOptions: { ca: emulator.caCert },
      serviceVersion: "7.4",
    });
    const got = await fresh.getSecret(name);
    expect(got.name).toBe(name);
  });

  it("reads the seeded secret with its tags", async () => {
    const seeded = await keyturn.getSecret("stmlbatch-key");
    expect(seeded.properties.tags?.["keyturn-key-name"]).toBe("key1");
    expect(typeof seeded.value).toBe("string");
  });

  it("round-trips versions, tags and content type", async () => {
    const name = uniqueName("versions");
    const first = value();
    const second = value();
    const v1 = await keyturn.setSecret(name, first, {
      tags: { "keyturn-key-name": "key1", owner: "platform" },
      contentType: "text/plain",
    });
    const v2 = await keyturn.setSecret(name, second, { tags: { "keyturn-key-name": "key2" } });
    expect(v2.properties.version).not.toBe(v1.properties.version);

    const latest = await keyturn.getSecret(name);
    expect(latest.value).toBe(second);
    expect(latest.properties.tags).toEqual({ "keyturn-key-name": "key2" });
    expect(latest.properties.contentType).toBeUndefined();

    const old = await keyturn.getSecret(name, { version: v1.properties.version! });
    expect(old.value).toBe(first);
    expect(old.properties.tags).toEqual({ "keyturn-key-name": "key1", owner: "platform" });
    expect(old.properties.contentType).toBe("text/plain");

    const updated = await officer.updateSecretProperties(name, v1.properties.version!, {
      tags: { retired: "true" },
    });
    expect(updated.tags).toEqual({ retired: "true" });
    expect(updated.contentType).toBe("text/plain");
    const reread = await keyturn.getSecret(name, { version: v1.properties.version! });
    expect(reread.properties.tags).toEqual({ retired: "true" });
    expect(reread.value).toBe(first);
  });

  it("lists versions past one page (25), with the SDK following nextLink", async () => {
    const name = uniqueName("paged");
    const versions: string[] = [];
    for (let i = 0; i < 31; i++) {
      const set = await officer.setSecret(name, value());
      versions.push(set.properties.version!);
    }
    const listed: string[] = [];
    for await (const properties of officer.listPropertiesOfSecretVersions(name)) {
      expect(properties.name).toBe(name);
      expect((properties as { value?: unknown }).value).toBeUndefined();
      listed.push(properties.version!);
    }
    expect(listed.sort()).toEqual([...versions].sort());

    const pageSizes: number[] = [];
    for await (const page of officer.listPropertiesOfSecretVersions(name).byPage({ maxPageSize: 10 })) {
      pageSizes.push(page.length);
    }
    expect(pageSizes).toEqual([10, 10, 10, 1]);
  });

  it("lists secrets without their values", async () => {
    const name = uniqueName("listed");
    await officer.setSecret(name, value(), { tags: { a: "b" } });
    const found = [];
    for await (const properties of officer.listPropertiesOfSecrets()) {
      if (properties.name === name) found.push(properties);
    }
    expect(found).toHaveLength(1);
    expect(found[0]!.tags).toEqual({ a: "b" });
    expect(found[0]!.id).toBe(`${vaultUrl}secrets/${name}`);
  });

  it("answers 404 SecretNotFound for an unknown secret or version", async () => {
    const missing = await restError(keyturn.getSecret(uniqueName("missing")));
    expect(missing.statusCode).toBe(404);
    expect(missing.code).toBe("SecretNotFound");

    const name = uniqueName("known");
    await keyturn.setSecret(name, value());
    const wrongVersion = await restError(keyturn.getSecret(name, { version: "0".repeat(32) }));
    expect(wrongVersion.statusCode).toBe(404);
    expect(wrongVersion.code).toBe("SecretNotFound");
  });

  it("refuses a bad secret name with 400 BadParameter", async () => {
    const error = await restError(keyturn.setSecret("not_valid", value()));
    expect(error.statusCode).toBe(400);
    expect(error.code).toBe("BadParameter");
  });

  describe("data-plane RBAC", () => {
    let readOnly: Clients;
    let armOnly: Clients;

    beforeAll(() => {
      readOnly = principalWith(emulator, [], [GET]);
      // Control-plane wildcards grant no data actions.
      armOnly = principalWith(emulator, ["*/read"]);
    });

    it("403 ForbiddenByRbac when the principal lacks setSecret; nothing is stored", async () => {
      const name = uniqueName("denied");
      const secretValue = value();
      const error = await restError(readOnly.secrets(VAULT).setSecret(name, secretValue));
      expect(error.statusCode).toBe(403);
      expect(error.code).toBe("Forbidden");
      expect(error.message).toContain(`Action: '${SET}'`);
      expect(error.message).not.toContain(secretValue);
      expect((error.details as { error?: { innerError?: { code?: string } } }).error?.innerError?.code).toBe(
        "ForbiddenByRbac",
      );
      const missing = await restError(keyturn.getSecret(name));
      expect(missing.statusCode).toBe(404);
    });

    it("403 on get for a principal with only control-plane actions; getSecret alone cannot list", async () => {
      const name = uniqueName("guarded");
      await keyturn.setSecret(name, value());
      const error = await restError(armOnly.secrets(VAULT).getSecret(name));
      expect(error.statusCode).toBe(403);
      expect(error.message).toContain(`Action: '${GET}'`);

      const allowed = await readOnly.secrets(VAULT).getSecret(name);
      expect(allowed.name).toBe(name);
      const listing = await restError(readOnly.secrets(VAULT).listPropertiesOfSecretVersions(name).next());
      // The SDK's pager reports only the status ("Pagination failed with unexpected statusCode 403").
      expect(listing.statusCode).toBe(403);
    });
  });

  it("refuses to get a disabled version with 403 SecretDisabled", async () => {
    const name = uniqueName("disabled");
    const set = await officer.setSecret(name, value());
    await officer.updateSecretProperties(name, set.properties.version!, { enabled: false });
    const error = await restError(officer.getSecret(name, { version: set.properties.version! }));
    expect(error.statusCode).toBe(403);
    expect(error.code).toBe("Forbidden");
  });

  it("soft-deletes, recovers and purges a secret", async () => {
    const name = uniqueName("deleted");
    const secretValue = value();
    await officer.setSecret(name, secretValue);

    const deletion = await officer.beginDeleteSecret(name, { intervalInMs: 10 });
    const deleted = await deletion.pollUntilDone();
    expect(deleted.name).toBe(name);
    expect(deleted.properties.recoveryId).toBe(`${vaultUrl}deletedsecrets/${name}`);
    expect(deleted.properties.deletedOn).toBeInstanceOf(Date);
    expect(deleted.value).toBeUndefined();
    expect((await restError(officer.getSecret(name))).statusCode).toBe(404);

    const reuse = await restError(officer.setSecret(name, value()));
    expect(reuse.statusCode).toBe(409);
    expect(reuse.code).toBe("Conflict");

    const recovery = await officer.beginRecoverDeletedSecret(name, { intervalInMs: 10 });
    await recovery.pollUntilDone();
    expect((await officer.getSecret(name)).value).toBe(secretValue);

    await (await officer.beginDeleteSecret(name, { intervalInMs: 10 })).pollUntilDone();
    await officer.purgeDeletedSecret(name);
    expect((await restError(officer.getDeletedSecret(name))).statusCode).toBe(404);
    const again = await officer.setSecret(name, value());
    expect(again.name).toBe(name);
  });
});

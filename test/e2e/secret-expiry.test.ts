import { startRotationRig, type RotationRig } from "../helpers/rotation";
import { clientsFor, type Clients } from "../helpers/emulator";
import { regenerationCounts } from "../helpers/estate";
import { EVENT_GRID_WEBHOOK } from "../../local/host";
import { DEFAULT_SCHEDULE } from "../../shared/config";
import { SECRET_CONTENT_TYPE, secretValidity } from "../../shared/published-secret";
import { scopeInstanceId, type RotationReport } from "../../shared/rotation";

/**
 * Issue 11, secrets hygiene, on the emulator through the real functions and the real Key Vault SDK:
 * a rotation publishes each secret version with an expiry, a content type and the rotation sample's
 * tags; a SecretNearExpiry event for a secret keyturn publishes, delivered through the local host,
 * starts a rotation of exactly that secret's account, and any other event starts nothing.
 */

const VAULT = "kv-keyturn-demo";
// Not imported from functions/eventgrid: the app must be loaded by the local host first (it captures
// the registrations the entry module makes as it loads).
const EVENT_GRID_FUNCTION = "secretNearExpiry";
const SECRET_NEAR_EXPIRY = "Microsoft.KeyVault.SecretNearExpiry";
let rig: RotationRig;
let clients: Clients;
let origin: string;

beforeAll(async () => {
  rig = await startRotationRig();
  clients = clientsFor(rig.emulator);
  origin = await rig.host.start({ timers: false });
});
afterAll(async () => {
  await rig?.stop();
});

async function accountId(name: string): Promise<string> {
  return (await clients.storage.storageAccounts.getProperties("rg-ml-prod", name)).id ?? "";
}

function nearExpiry(secretName: string, vaultName = VAULT, eventType = SECRET_NEAR_EXPIRY) {
  return {
    id: `event-${secretName}-${Math.random().toString(36).slice(2)}`,
    topic: `/subscriptions/${rig.emulator.connection.subscriptionIds[0]}/resourceGroups/rg-ml-prod/providers/Microsoft.KeyVault/vaults/${vaultName}`,
    subject: secretName,
    eventType,
    eventTime: new Date().toISOString(),
    data: {
      Id: `https://${vaultName}.vault.azure.net/secrets/${secretName}/0123456789abcdef0123456789abcdef`,
      VaultName: vaultName,
      ObjectType: "Secret",
      ObjectName: secretName,
      Version: "0123456789abcdef0123456789abcdef",
      NBF: null,
      EXP: Math.floor(Date.now() / 1000) + 30 * 86_400,
    },
    dataVersion: "1",
    metadataVersion: "1",
  };
}

async function webhook(events: unknown, options: { kind?: string; key?: string | null } = {}) {
  const key = options.key === undefined ? rig.host.keys.system : options.key;
  const query = `functionName=${EVENT_GRID_FUNCTION}${key ? `&code=${encodeURIComponent(key)}` : ""}`;
  const res = await fetch(`${origin}${EVENT_GRID_WEBHOOK}?${query}`, {
    method: "POST",
    headers: { "content-type": "application/json", "aeg-event-type": options.kind ?? "Notification" },
    body: JSON.stringify(events),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as unknown) : undefined };
}

describe("published secrets carry an expiry, a content type and the rotation sample's tags", () => {
  it("a rotation publishes the new key with exp = now + schedule interval + margin, read back with the SDK", async () => {
    const batch = await accountId("stmlbatch");
    const before = new Date();
    const { report } = await rig.rotate({ storageAccounts: ["stmlbatch"] });
    const after = new Date();
    expect(report.accounts.map((a) => [a.name, a.outcome])).toEqual([["stmlbatch", "rotated"]]);

    const secret = await clients.secrets(VAULT).getSecret("stmlbatch-key");
    const { properties } = secret;
    expect(properties.contentType).toBe(SECRET_CONTENT_TYPE);
    const earliest = secretValidity(DEFAULT_SCHEDULE, 35, before);
    const latest = secretValidity(DEFAULT_SCHEDULE, 35, after);
    expect(properties.expiresOn?.getTime()).toBeGreaterThanOrEqual(earliest.expiresOn.getTime());
    expect(properties.expiresOn?.getTime()).toBeLessThanOrEqual(latest.expiresOn.getTime());
    expect([String(earliest.validityPeriodDays), String(latest.validityPeriodDays)]).toContain(
      properties.tags?.ValidityPeriodDays,
    );
    const activeKey = report.accounts[0]?.activeKeyAfter?.key;
    expect(properties.tags).toMatchObject({
      "keyturn-storage-account": batch,
      "keyturn-key-name": activeKey,
      CredentialId: activeKey,
      ProviderAddress: batch,
    });
    expect(properties.tags?.["keyturn-rotation-id"]).toMatch(/\S/);
    expect(properties.tags?.["keyturn-time"]).toMatch(/^\d{4}-\d\d-\d\dT/);
    // The listing keyturn discovers published secrets with shows the same attributes.
    for await (const listed of clients.secrets(VAULT).listPropertiesOfSecrets()) {
      if (listed.name !== "stmlbatch-key") continue;
      expect(listed.expiresOn).toEqual(properties.expiresOn);
      expect(listed.contentType).toBe(SECRET_CONTENT_TYPE);
    }
  });
});

describe("SecretNearExpiry through the local host", () => {
  it("ignores an event for a secret keyturn does not publish, and other event types: nothing starts", async () => {
    await clients.secrets(VAULT).setSecret("someone-elses-secret", "not a key", { tags: { owner: "app" } });
    const instances = rig.host.durable.list().length;
    const regenerations = rig.emulator.ctx.regenerations.length;

    expect(await rig.host.deliverEvent(EVENT_GRID_FUNCTION, nearExpiry("someone-elses-secret"))).toBe(true);
    expect(await rig.host.deliverEvent(EVENT_GRID_FUNCTION, nearExpiry("no-such-secret"))).toBe(true);
    expect(
      await rig.host.deliverEvent(
        EVENT_GRID_FUNCTION,
        nearExpiry("stmlbatch-key", VAULT, "Microsoft.KeyVault.SecretNewVersionCreated"),
      ),
    ).toBe(true);
    expect((await webhook([nearExpiry("no-such-secret")])).status).toBe(202);
    await rig.host.idle();

    expect(rig.host.durable.list()).toHaveLength(instances);
    expect(rig.emulator.ctx.regenerations).toHaveLength(regenerations);
    expect(rig.logs.join("\n")).toMatch(
      /SecretNearExpiry for kv-keyturn-demo\/someone-elses-secret .*ignored: not a secret keyturn publishes/,
    );
    expect(rig.logs.join("\n")).toMatch(/ignored: event type "Microsoft.KeyVault.SecretNewVersionCreated"/);
  });

  it("the webhook takes the system key, answers the subscription handshake and knows its functions", async () => {
    expect((await webhook([nearExpiry("stmlbatch-key")], { key: null })).status).toBe(401);
    expect((await webhook([nearExpiry("stmlbatch-key")], { key: rig.host.keys.function })).status).toBe(401);
    const handshake = await webhook(
      [
        {
          id: "v",
          eventType: "Microsoft.EventGrid.SubscriptionValidationEvent",
          data: { validationCode: "c0de" },
        },
      ],
      { kind: "SubscriptionValidation" },
    );
    expect(handshake).toEqual({ status: 200, body: { validationResponse: "c0de" } });
    const res = await fetch(
      `${origin}${EVENT_GRID_WEBHOOK}?functionName=health&code=${rig.host.keys.system}`,
      {
        method: "POST",
        headers: { "aeg-event-type": "Notification" },
        body: "[]",
      },
    );
    expect(res.status).toBe(404);
  });

  it("an event for a published secret starts a rotation of exactly that account, once", async () => {
    // A second published secret, for stmlshared, holding its active key (as a person would set it up).
    const shared = await accountId("stmlshared");
    const keys = await clients.storage.storageAccounts.listKeys("rg-ml-prod", "stmlshared");
    const key1 = keys.keys?.find((k) => k.keyName === "key1")?.value ?? "";
    await clients.secrets(VAULT).setSecret("stmlshared-key", key1, {
      tags: { "keyturn-storage-account": shared, "keyturn-key-name": "key1" },
    });
    const before = regenerationCounts(rig.emulator);
    const instanceId = scopeInstanceId({ storageAccounts: [shared] });

    // Event Grid delivers at least once: two deliveries of one event, one through the webhook.
    const event = nearExpiry("stmlshared-key");
    const [viaWebhook, direct] = await Promise.all([
      webhook([event]),
      rig.host.deliverEvent(EVENT_GRID_FUNCTION, event),
    ]);
    expect([viaWebhook.status, direct]).toEqual([202, true]);

    const done = await rig.host.waitForCompletion(instanceId, { timeoutMs: 120_000 });
    expect(done.runtimeStatus).toBe("Completed");
    const report = done.output as RotationReport;
    expect(report.accounts.map((a) => [a.name, a.outcome])).toEqual([["stmlshared", "rotated"]]);
    expect(rig.host.durable.list().filter((i) => i.instanceId === instanceId)).toHaveLength(1);
    expect(done.input).toMatchObject({
      trigger: "event",
      startedBy: `SecretNearExpiry ${VAULT}/stmlshared-key`,
    });
    expect(regenerationCounts(rig.emulator)).toEqual({ ...before, stmlshared: { key1: 1, key2: 1 } });
    expect(rig.logs.join("\n")).toMatch(
      new RegExp(`SecretNearExpiry for ${VAULT}/stmlshared-key.*started ${instanceId}`),
    );
    // The other delivery found it running (or lost the race to start it) and started nothing.
    expect(rig.logs.join("\n")).toMatch(
      /SecretNearExpiry for .*stmlshared-key.*: a rotation of .* is already \w+/,
    );
    expect(rig.logs.filter((l) => /SecretNearExpiry for .*stmlshared-key.*: started /.test(l))).toHaveLength(
      1,
    );

    // The rotation it started published the secret again, with its expiry and the sample's tags.
    const secret = await clients.secrets(VAULT).getSecret("stmlshared-key");
    expect(secret.properties.expiresOn).toBeInstanceOf(Date);
    expect(secret.properties.tags).toMatchObject({
      CredentialId: report.accounts[0]?.activeKeyAfter?.key,
      ProviderAddress: shared,
    });
  });
});
